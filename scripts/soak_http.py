"""The soak's HTTP clients: a lean HTTP/1.1 client on asyncio streams, and httpx.

Both answer ``request(method, path, headers, body)`` with an ``Answer`` or raise
``TransportFailure``. The lean one (the default) exists because the generator shares the
machine with the service: on the soak's mix httpx's ``AsyncClient`` spent 0.9-2.2 ms of
CPU a request (its connection pool's cost grows with the connections) where the service
spent about 0.5 ms, so a capacity measured through it was the generator's. The lean client
keeps a pool of keep-alive connections, one request in flight on each, and reads a
response by its ``Content-Length`` (or chunks); it speaks to this service only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

IDLE_LIMIT_S = 4.0
"""A connection idle this long is closed, not reused: uvicorn closes one idle for 5 s, and
a request sent just as it does would fail without having been processed."""
MAX_HEAD_BYTES = 64 * 1024


class TransportFailure(Exception):
    """No answer: the connection failed, timed out or broke the protocol."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient(Protocol):
    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float

    def close(self) -> None:
        self.writer.close()


class LeanClient:
    """Up to ``connections`` keep-alive HTTP/1.1 connections to ``host:port``."""

    def __init__(self, host: str, port: int, connections: int, timeout_s: float) -> None:
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)
        self._host_header = f"Host: {host}:{port}\r\n"

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        payload = body or b""
        head = [f"{method} {path} HTTP/1.1\r\n", self._host_header]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        head.append(f"Content-Length: {len(payload)}\r\n\r\n")
        data = "".join(head).encode() + payload
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self.timeout_s):
                    connection.writer.write(data)
                    await connection.writer.drain()
                    answer, keep = await _read_response(connection.reader)
            except (OSError, EOFError, ValueError, TimeoutError, asyncio.LimitOverrunError) as exc:
                connection.close()
                raise TransportFailure(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                connection.close()
                raise
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the others age out
            if now - connection.idle_since < IDLE_LIMIT_S:
                return connection
            connection.close()
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEAD_BYTES
                )
        except (OSError, TimeoutError) as exc:
            raise TransportFailure(f"connect: {type(exc).__name__}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(reader, writer, now)

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The response and whether the connection may be used again."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ValueError(f"not an HTTP/1.1 response: {head[:80]!r}")
    status = int(head[9:12])
    fields: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name:
            fields[name.strip().lower()] = value.strip().lower()
    if b"content-length" in fields:
        length = int(fields[b"content-length"])
        body = await reader.readexactly(length) if length else b""
    elif fields.get(b"transfer-encoding") == b"chunked":
        body = await _read_chunks(reader)
    elif status in (204, 304):
        body = b""
    else:
        raise ValueError(f"a {status} response without a length")
    return Answer(status, body), fields.get(b"connection") != b"close"


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers from this service
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


class HttpxClient:
    """The same through ``httpx.AsyncClient``, to compare the generator's cost."""

    def __init__(self, base_url: str, connections: int, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=connections),
            timeout=httpx.Timeout(timeout_s, pool=None),
        )

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        try:
            response = await self._client.request(method, path, headers=headers, content=body)
        except httpx.HTTPError as exc:
            raise TransportFailure(f"{type(exc).__name__}: {exc}") from exc
        return Answer(response.status_code, response.content)

    async def aclose(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self._client.aclose()
