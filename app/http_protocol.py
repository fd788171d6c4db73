"""``serve``'s HTTP/1.1 protocol: uvicorn's httptools protocol with bounds on the head.

The limits are those of ``app.middleware.header_limits`` (``--max-header-bytes``,
``--max-headers``), enforced here as the head arrives: the request target as the parser
reports it, each header field once it is complete. Over a limit the connection gets a
``431`` and is closed before any ASGI request exists, so the app never sees it.

httptools hands a header field over only once it has all of it, keeping its pieces
meanwhile; so the raw bytes received while a head is incomplete are counted too, and past
twice the limit (plus the fields' framing) the connection is refused whatever the parser
has reported. At most that, plus one read from the socket, is ever held for one head.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.asgi import worker_config
from app.middleware.header_limits import HeaderLimits, HeadersTooLarge
from app.propagation.notifier import server_stopping
from app.responses import NO_STORE

log = structlog.get_logger("revocation.serve")
FIELD_FRAMING = 4
"""``": "`` and CRLF around each header field, which the parser does not report."""
REQUEST_LINE_FRAMING = 64
"""The method, the HTTP version and their separators, generously."""


@cache
def worker_limits() -> HeaderLimits:
    """This process's limits, read once (the protocol is made per connection)."""
    return HeaderLimits.of(worker_config())


def refusal_bytes(description: str, extra_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole HTTP/1.1 ``431`` with the service's OAuth error body; it closes the
    connection (what follows the head on the wire cannot be read as a next request)."""
    payload = json.dumps(HeadersTooLarge(description).body()).encode()
    headers = [
        *extra_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in NO_STORE.items()),
        (b"connection", b"close"),
    ]
    head = [b"HTTP/1.1 431 Request Header Fields Too Large"]
    head += [name + b": " + value for name, value in headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + payload


class _HeadRefused(Exception):
    """Raised in a parser callback to stop the parser; ``send_400_response`` answers."""


class HeaderLimitedProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers ``431`` to a head over ``worker_limits()``."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = worker_limits()
        self.raw_cap = (
            2 * (self.limits.max_bytes + FIELD_FRAMING * self.limits.max_count)
            + REQUEST_LINE_FRAMING
        )
        self.reading_head = False
        """Between the first byte of a request and the end of its head."""
        self.head_received = 0
        """Bytes received while the current head is unfinished, after the read where it
        began (so an under-count by at most one read)."""
        self.head_bytes = 0
        self.header_count = 0
        self.refusal: str | None = None

    def data_received(self, data: bytes) -> None:
        continuing = self.reading_head
        super().data_received(data)
        if self.reading_head and self.refusal is None:
            # A head unfinished before this read took all of it. One that began in this read
            # is not counted yet: the read may also hold the tail of an earlier request (a
            # large body, or pipelining), and uvloop reads up to 256 KiB at once.
            self.head_received = self.head_received + len(data) if continuing else 0
            if self.head_received > self.raw_cap:
                self.refuse(self.limits.too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        self.head_bytes = 0
        self.header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.max_count:
            self._stop(self.limits.too_many())
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = OneWriteResponses(self.transport, self.loop)  # type: ignore[assignment]

    def shutdown(self) -> None:
        """Graceful shutdown waits for every request in progress: an event stream or a
        long-poll held open would hold it up, so they are told to answer now."""
        server_stopping()
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        if self.refusal is not None:  # the parser stopped because a limit was reached
            self.refuse(self.refusal)
        else:
            super().send_400_response(msg)

    def refuse(self, description: str) -> None:
        """Answer ``431`` and close the connection."""
        self.refusal = description
        if self.transport.is_closing():
            return
        peer = self.client[0] if self.client else None
        log.warning("request_refused", status=431, error_description=description, peer=peer)
        self.transport.write(refusal_bytes(description, self.server_state.default_headers))
        self.transport.close()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_bytes:
            self._stop(self.limits.too_large())

    def _stop(self, description: str) -> None:
        self.refusal = description
        raise _HeadRefused(description)


class OneWriteResponses:
    """The transport as a response's cycle sees it: the head is held until the body's first
    write and leaves with it, one system call and one TCP segment where uvicorn made two
    (a JSON answer: introspection, every error). What does not follow in the same turn of
    the event loop (a ``HEAD`` answer, a stream's first event) gets its head at the end
    of that turn. Everything else is the transport's own."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 100 "):
            self._head = data
            self._loop.call_soon(self._release)
        else:
            self._transport.write(data)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def _release(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
