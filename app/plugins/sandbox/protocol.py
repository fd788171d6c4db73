"""Framing between the service and a worker: a 4-byte big-endian length, then JSON.

Requests carry ``id``, ``hook``, ``args`` and ``module`` (``key``, ``name``,
``version``, and ``source`` only when the worker does not hold that key yet). A reply
is a metadata frame (``id``, ``ok``, ``output``, ``cached``, and ``kind``, ``detail``,
``retire`` when not ``ok``), followed, when ``ok``, by a frame holding the value's JSON
encoding, so that its size is checked on its own. ``worker.py`` mirrors this without
importing it (it runs as a standalone program).

Everything read from a worker is hostile: sizes are checked before reading, and
decoding is strict JSON.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

HEADER = struct.Struct(">I")


class FrameTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame of {size} bytes, more than {limit}")
        self.size = size


class MalformedFrame(Exception):
    pass


def encode(message: Any) -> bytes:
    """One frame; ``TypeError``/``ValueError`` if ``message`` is not JSON."""
    body = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    data = body.encode("utf-8")
    return HEADER.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    """The next frame's body; ``IncompleteReadError`` at end of file."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > limit:
        raise FrameTooLarge(size, limit)
    return await reader.readexactly(size)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedFrame(f"not JSON: {type(exc).__name__}") from None
