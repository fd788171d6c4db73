"""Framing between the service and a worker; ``worker.py`` mirrors it without importing it
(it runs as a standalone program).

A request is a 4-byte big-endian length, then JSON: ``id``, ``hook``, ``args`` and
``module`` (``key``, ``name``, and ``source`` unless the service believes the worker
holds that key already). Several may be in flight; the worker answers strictly in order.

A reply is one frame: a 4-byte length of the rest, a fixed header (``id`` 4 bytes,
``kind`` 1, ``flags`` 1, the output's length 4), the captured output (UTF-8), then the
body: the value's JSON when ``kind`` is ``OK``, the one-line detail of a failure, the
layers' JSON in the hello. Only the value is JSON.

Everything read from a worker is hostile: every size is checked before the bytes it
announces are awaited, text must be UTF-8, and the value strict JSON.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

HEADER = struct.Struct(">I")
REPLY = struct.Struct(">IBBI")
OK, EXCEPTION, MISSING_HOOK, NOT_JSON, OVERSIZED_REPLY, NEED_SOURCE, HELLO = range(7)
FAILURES = {
    EXCEPTION: "exception",
    MISSING_HOOK: "missing_hook",
    NOT_JSON: "not_json",
    OVERSIZED_REPLY: "oversized_reply",
}
RETIRE, CACHED = 1, 2
"""``flags``: the worker must take no more calls (after a ``MemoryError``); the module
of the request is loaded in the worker after it."""
HELLO_LIMIT = 64 * 1024
DETAIL_LIMIT = 4 * 1024
OUTPUT_MARGIN = 64
"""The worker's ``[output truncated]`` note, beyond ``max_output_bytes``."""

# Arguments come from the service's own views, never circular: the check costs a third.
_ENCODER = json.JSONEncoder(check_circular=False, allow_nan=False, separators=(",", ":"))


class FrameTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a reply of {size} bytes, more than {limit}")


class MalformedFrame(Exception):
    pass


class Reply(NamedTuple):
    call_id: int
    kind: int
    flags: int
    output: bytes
    body: bytes


def encode_request(call_id: int, hook: str, module: dict[str, str], args: Any) -> bytes:
    """One frame; ``TypeError``/``ValueError`` if ``args`` is not JSON."""
    try:
        body = _ENCODER.encode({"id": call_id, "hook": hook, "module": module, "args": args})
    except RecursionError:
        raise ValueError("the arguments nest too deep (or are circular)") from None
    data = body.encode()  # ASCII: non-ASCII is escaped
    return HEADER.pack(len(data)) + data


class ReplyReader:
    """Cuts the bytes read from a worker into replies."""

    def __init__(self, max_output_bytes: int, max_reply_bytes: int) -> None:
        self.max_output = max_output_bytes + OUTPUT_MARGIN
        self.max_value = max_reply_bytes
        self.max_frame = REPLY.size + self.max_output + max(max_reply_bytes, HELLO_LIMIT)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Reply]:
        """The replies completed by ``data``; ``FrameTooLarge`` or ``MalformedFrame`` as
        soon as a header is wrong (the replies before it are yielded first)."""
        buffer = self._buffer
        view: bytes | bytearray = data
        if buffer:
            buffer += data
            view = buffer
        end, pos = len(view), 0
        while end - pos >= HEADER.size:
            (size,) = HEADER.unpack_from(view, pos)
            if size > self.max_frame:
                raise FrameTooLarge(size, self.max_frame)
            if size < REPLY.size:
                raise MalformedFrame("a reply shorter than its header")
            if end - pos < HEADER.size + REPLY.size:
                break
            call_id, kind, flags, out_size = REPLY.unpack_from(view, pos + HEADER.size)
            self._check(kind, out_size, size - REPLY.size - out_size)
            if end - pos < HEADER.size + size:
                break
            start = pos + HEADER.size + REPLY.size
            pos += HEADER.size + size
            out_end = start + out_size
            yield Reply(call_id, kind, flags, bytes(view[start:out_end]), bytes(view[out_end:pos]))
        if view is buffer:
            del buffer[:pos]
        elif pos < end:
            buffer += data[pos:]

    def _check(self, kind: int, out_size: int, body_size: int) -> None:
        if out_size > self.max_output or body_size < 0:
            raise MalformedFrame("a reply whose output does not fit")
        if kind == OK:
            if body_size > self.max_value:
                raise FrameTooLarge(body_size, self.max_value)
        elif body_size > (HELLO_LIMIT if kind == HELLO else DETAIL_LIMIT):
            raise MalformedFrame("a reply whose detail is too long")


def text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFrame("a reply that is not UTF-8") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def decode(data: bytes) -> Any:
    if data == b"null":
        return None
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise MalformedFrame(f"not JSON: {type(exc).__name__}") from None
