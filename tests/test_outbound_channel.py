"""POSTs to a receiver over one kept connection (``app.outbound_channel``), against a
scripted HTTP/1.1 server on the loopback: every POST checked again, answers read as
sent and bounded, no redirect followed, a closed connection replaced."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.outbound import FetchRefused, HostRules
from app.outbound_channel import PostChannel
from tests.test_outbound import _certificates

ALLOW_PRIVATE = HostRules(("*",), allow_private=True)
BODY = b"eyJhbGciOiJub25lIn0.eyJ0eG4iOiIxIn0."
HEADERS = {"Content-Type": "application/secevent+jwt"}
ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


@dataclass
class ScriptedServer:
    """Answers each request with the next of ``answers`` (the last one repeats); records
    every request's head and body and how many connections it accepted. ``close_after``:
    close each connection after one answer."""

    answers: list[bytes] = field(default_factory=lambda: [ACCEPTED])
    close_after: bool = False
    silent: bool = False
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    accepted_on: list[str] = field(default_factory=list)
    """The local address of each connection, in order."""
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.accepted_on.append(writer.get_extra_info("sockname")[0])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.requests.append((head, await reader.readexactly(length)))
                if self.silent:
                    await asyncio.sleep(3600)
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, host: str = "127.0.0.1", path: str = "/events") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    scripted = ScriptedServer()
    listening = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    scripted.port = listening.sockets[0].getsockname()[1]
    try:
        yield scripted
    finally:
        listening.close()


@pytest.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Made-up names resolved to the addresses given here; ``asked`` lists lookups."""
    table: dict[str, list[str]] = {"asked": []}
    real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in table:
            return await real(host, port, **kwargs)
        table["asked"].append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return table


async def post(channel: PostChannel, rules: HostRules = ALLOW_PRIVATE) -> Any:
    return await channel.post(rules, BODY, HEADERS)


async def test_posts_share_one_connection_and_each_is_checked_again(
    server: ScriptedServer, dns: dict[str, list[str]]
) -> None:
    dns["rs.pinned.test"] = ["127.0.0.1"]
    channel = PostChannel(server.url("rs.pinned.test", "/events?x=1"), timeout_s=5)
    try:
        for _ in range(3):
            assert (await post(channel)).status == 202
        assert server.connections == 1
        assert dns["asked"] == ["rs.pinned.test"] * 3
        head, body = server.requests[0]
        assert head.startswith(b"POST /events?x=1 HTTP/1.1\r\n")
        assert f"Host: rs.pinned.test:{server.port}".encode() in head
        assert b"Content-Type: application/secevent+jwt" in head and body == BODY
        assert b"Accept-Encoding: identity" in head
        # The rules changed: the kept connection carries nothing more.
        with pytest.raises(FetchRefused, match="non-public"):
            await post(channel, HostRules(("*",)))
        with pytest.raises(FetchRefused, match="allowed_hosts"):
            await post(channel, HostRules(("other.test",), allow_private=True))
        assert len(server.requests) == 3
    finally:
        await channel.close()


async def test_a_kept_connection_does_not_carry_a_post_to_a_changed_address(
    server: ScriptedServer, dns: dict[str, list[str]]
) -> None:
    # The same server on a second loopback address: the name's DNS answer moves to it.
    second = await asyncio.start_server(server.handle, "127.0.0.2", server.port)
    dns["rs.moving.test"] = ["127.0.0.1"]
    channel = PostChannel(server.url("rs.moving.test"), timeout_s=5)
    try:
        assert (await post(channel)).status == 202
        dns["rs.moving.test"] = ["127.0.0.2"]
        assert (await post(channel)).status == 202
        assert (await post(channel)).status == 202
        assert server.accepted_on == ["127.0.0.1", "127.0.0.2"]
    finally:
        await channel.close()
        second.close()


async def test_a_redirect_is_an_answer_and_is_not_followed(server: ScriptedServer) -> None:
    server.answers = [
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n"
    ]
    channel = PostChannel(server.url(), timeout_s=5)
    try:
        assert (await post(channel)).status == 307
        assert len(server.requests) == 1
    finally:
        await channel.close()


async def test_a_chunked_error_body_is_read(server: ScriptedServer) -> None:
    error = b'{"err":"invalid_request","description":"no"}'
    server.answers = [
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(error), error),
        ACCEPTED,
    ]
    channel = PostChannel(server.url(), timeout_s=5)
    try:
        reply = await post(channel)
        assert (reply.status, reply.content_type, reply.body) == (400, "application/json", error)
        assert (await post(channel)).status == 202
        assert server.connections == 1
    finally:
        await channel.close()


async def test_a_body_over_the_limit_is_cut_and_its_connection_dropped(
    server: ScriptedServer,
) -> None:
    server.answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000,
        ACCEPTED,
    ]
    channel = PostChannel(server.url(), timeout_s=5, max_bytes=1000)
    try:
        reply = await post(channel)
        assert reply.status == 200 and reply.body == b"x" * 1000
        assert (await post(channel)).status == 202
        assert server.connections == 2
    finally:
        await channel.close()


async def test_a_connection_the_receiver_closed_is_replaced(server: ScriptedServer) -> None:
    server.close_after = True
    channel = PostChannel(server.url(), timeout_s=5)
    try:
        for _ in range(3):
            assert (await post(channel)).status == 202
        assert server.connections == 3 and len(server.requests) == 3
    finally:
        await channel.close()


async def test_no_answer_in_time_is_refused(server: ScriptedServer) -> None:
    server.silent = True
    channel = PostChannel(server.url(), timeout_s=0.2)
    try:
        with pytest.raises(FetchRefused, match="no answer"):
            await post(channel)
    finally:
        await channel.close()


async def test_a_header_value_cannot_add_a_line(server: ScriptedServer) -> None:
    channel = PostChannel(server.url(), timeout_s=5)
    try:
        with pytest.raises(FetchRefused, match="line break"):
            await channel.post(ALLOW_PRIVATE, BODY, {"Authorization": "x\r\nX-Evil: 1"})
        assert server.requests == []
    finally:
        await channel.close()


async def test_tls_sends_the_name_as_sni_and_checks_the_certificate_against_it(
    tmp_path: Path, dns: dict[str, list[str]]
) -> None:
    ca, cert, key = _certificates(tmp_path, "rs.tls.test")
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.sni_callback = lambda sock, name, ctx: names.append(name)
    scripted = ScriptedServer()
    listening = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    dns["rs.tls.test"] = dns["other.tls.test"] = ["127.0.0.1"]
    verify = ssl.create_default_context(cafile=str(ca))
    try:
        channel = PostChannel(f"https://rs.tls.test:{port}/events", timeout_s=5, verify=verify)
        assert (await post(channel)).status == 202
        await channel.close()
        assert names == ["rs.tls.test"]
        # Same address, a name the certificate does not cover: refused, nothing sent.
        for host in ("other.tls.test", "127.0.0.1"):
            channel = PostChannel(f"https://{host}:{port}/events", timeout_s=5, verify=verify)
            with pytest.raises(FetchRefused, match="SSL"):
                await post(channel)
            await channel.close()
        assert len(scripted.requests) == 1
    finally:
        listening.close()
