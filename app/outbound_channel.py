"""POSTs to one destination URL (a receiver of Security Event Tokens) over one kept-alive
HTTP/1.1 connection, under the host rules of ``app.outbound``.

A push receiver takes one POST per event: the request is the hot path of delivery, so
it is written by hand and the answer parsed by ``httptools`` (llhttp, already serving
our own requests): in the delivery process, a SET sent through ``httpx`` costs about 7
times the CPU, and through ``aiohttp`` (a session per receiver, kept alive, pinned to
the checked address) about 1.7 times (docs/PERFORMANCE.md, "Delivery off the request
path").

The guarantees are those of ``app.outbound``: before every POST the name is resolved and
every address checked (``resolve``); the connection goes to the checked address, with
the name as ``Host`` and as TLS SNI (the certificate verified against the name); a kept
connection carries a request only when the check gave the same address again; no
redirect is followed (a ``3xx`` is an answer like any other); the time and the body
read are bounded (a longer body is cut and the connection closed).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, quote

import httptools

from app.outbound import DEFAULT_MAX_BYTES, FetchRefused, HostRules, check_url, resolve

READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 16 * 1024
"""The answer's status line and header fields, together."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the destination answered a POST: its status and the start of its body."""

    status: int
    content_type: str
    body: bytes
    """At most the channel's ``max_bytes``: the rest is not read."""


class _Answer:
    """``httptools`` callbacks: what the answer holds, bounded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.content_type = b""
        self._name = b""
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.size = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value)
        if name.lower() == b"content-type":
            self.content_type = value

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        if self.size < self.max_bytes:
            self.body.append(chunk[: self.max_bytes - self.size])
        self.size += len(chunk)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked now: the parser forgets the answer's framing once it is complete.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()


class _Connection:
    def __init__(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.address = address
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class PostChannel:
    """POSTs to ``url`` only; one request at a time (a receiver's worker is sequential)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._tls = verify
        self._connection: _Connection | None = None

    async def close(self) -> None:
        self._drop()

    async def post(self, rules: HostRules, content: bytes, headers: dict[str, str]) -> Reply:
        """The answer whatever its status; ``FetchRefused`` for a refused host, a
        connection that failed or an answer that did not come (whole) in time."""
        parts, host, port = check_url(self.url, rules)
        try:
            async with asyncio.timeout(self.timeout_s):
                address = await resolve(host, port, rules)
                request = _request(parts, host, port, content, headers)
                kept = self._connection
                if kept is not None and kept.address == address:
                    try:
                        return await self._exchange(kept, request)
                    except _Stale:
                        pass  # the receiver closed it while idle: once more, afresh
                fresh = await self._connect(parts, host, address, port)
                return await self._exchange(fresh, request)
        except TimeoutError:
            self._drop()
            raise FetchRefused(f"no answer from {host} within {self.timeout_s} s") from None
        except (OSError, ssl.SSLError, httptools.HttpParserError, _Stale) as exc:
            self._drop()
            raise FetchRefused(f"sending to {host} failed: {type(exc).__name__}") from None

    async def _connect(self, parts: SplitResult, host: str, address: str, port: int) -> _Connection:
        self._drop()
        tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            address, port, ssl=tls, server_hostname=host if tls else None, limit=READ_SIZE
        )
        self._connection = _Connection(address, reader, writer)
        return self._connection

    async def _exchange(self, connection: _Connection, request: bytes) -> Reply:
        # Kept only once this answer has been read whole and allows it.
        self._connection = None
        try:
            return await self._read(connection, request)
        except BaseException:
            connection.close()
            raise

    async def _read(self, connection: _Connection, request: bytes) -> Reply:
        connection.writer.write(request)
        await connection.writer.drain()
        answer = _Answer(self.max_bytes)
        parser = answer.parser = httptools.HttpResponseParser(answer)
        received = 0
        while not answer.complete:
            data = await connection.reader.read(READ_SIZE)
            if not data:
                connection.close()
                if received == 0:
                    raise _Stale
                if not answer.headers_done:
                    raise ConnectionResetError("the answer ended early")
                break  # a body delimited by the end of the connection
            received += len(data)
            parser.feed_data(data)
            if not answer.headers_done and received > MAX_HEAD_BYTES:
                raise ConnectionResetError("the answer's head is too long")
            if answer.size >= self.max_bytes:
                break
        reply = Reply(
            parser.get_status_code(),
            answer.content_type.decode("latin-1"),
            b"".join(answer.body),
        )
        if answer.complete and answer.keep_alive:
            self._connection = connection
        else:
            connection.close()
        return reply

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Stale(Exception):
    """A kept connection the destination had closed: nothing was answered."""


def _request(
    parts: SplitResult, host: str, port: int, content: bytes, headers: dict[str, str]
) -> bytes:
    # Percent-encoded as httpx does: a control character or a space cannot end the line.
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    default_port = port == (443 if parts.scheme == "https" else 80)
    name = f"[{host}]" if ":" in host else host
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {name}" if default_port else f"Host: {name}:{port}",
        f"Content-Length: {len(content)}",
        "Accept-Encoding: identity",
    ]
    for field, value in headers.items():
        # A value (an operator's authorization header) must not add a line of its own.
        if not field.isascii() or not all(c.isprintable() and c != ":" for c in field):
            raise FetchRefused("a header field name is not a token")
        if any(c in value for c in "\r\n\0"):
            raise FetchRefused("a header field value holds a line break")
        lines.append(f"{field}: {value}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise FetchRefused("a header field value is not Latin-1") from None
    return head + content


_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
