"""Bounds on the request head in ``serve``'s own HTTP server (contract section 7).

Raw sockets, as an attacker sends: a head that never ends must still be answered ``431``
(the server stops reading it instead of buffering it all), and the connection closed.
One server with the defaults, one with ``--workers 2`` and other limits, which must
reach both worker processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, running_server

OPERATOR_KEY = "test-operator-key-0123456789"
SMALL_BYTES = 8192
SMALL_HEADERS = 30
MB = 1024 * 1024


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCATION_")}
    env.pop("MONGODB_URI", None)
    return {**env, "REVOCATION_ADMIN_KEY": OPERATOR_KEY}


def _serve(tmp: Path, *extra: str) -> Iterator[ServerProcess]:
    args = ["--data-dir", str(tmp / "data"), "--no-tenants", *extra]
    with running_server(args, cwd=tmp, env=_env()) as server:
        yield server


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _serve(
        tmp_path_factory.mktemp("small"),
        "--workers",
        "2",
        "--max-header-bytes",
        str(SMALL_BYTES),
        "--max-headers",
        str(SMALL_HEADERS),
    )


def exchange(server: ServerProcess, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        # The server may answer and close while we are still sending.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        received = bytearray()
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with our unread bytes in its buffer: its answer came first
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def request(
    target: str,
    fields: list[tuple[str, str]],
    *,
    end: bool = True,
    host: str = "test",
    close: bool = True,
) -> bytes:
    """A GET with these fields after ``Host`` and ``Connection: close`` (unless not
    ``close``); without ``end`` the head is left unfinished, as a hostile client leaves it."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *(["Connection: close"] if close else [])]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n" + ("\r\n" if end else "")).encode("latin-1")


def counted(target: str, fields: list[tuple[str, str]], *, close: bool = True) -> int:
    """The head's size as the limit counts it: target, names and values."""
    everything = [("Host", "test"), *([("Connection", "close")] if close else []), *fields]
    return len(target) + sum(len(n) + len(v) for n, v in everything)


def assert_refused(answer: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = answer
    assert status == 431, answer
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "invalid_request"


def padded(size: int, target: str = "/healthz", *, close: bool = True) -> list[tuple[str, str]]:
    """One ``X-Pad`` field that brings the counted head to ``size`` bytes."""
    return [("X-Pad", "p" * (size - counted(target, [("X-Pad", "")], close=close)))]


def test_a_megabyte_header_that_never_ends_is_refused(default_server: ServerProcess) -> None:
    assert_refused(exchange(default_server, request("/healthz", [("X-Big", "a" * MB)], end=False)))


def test_a_megabyte_basic_value_is_refused(default_server: ServerProcess) -> None:
    fields = [("Tenant-ID", "nobody"), ("Authorization", "Basic " + "A" * MB)]
    raw = request("/token/revoke", fields) + b"token=x"
    assert_refused(exchange(default_server, raw))


def test_a_megabyte_target_is_refused(default_server: ServerProcess) -> None:
    assert_refused(exchange(default_server, request("/healthz?" + "q" * MB, [], end=False)))


def test_five_thousand_headers_are_refused(default_server: ServerProcess) -> None:
    fields = [(f"X-{i}", "1") for i in range(5000)]
    assert_refused(exchange(default_server, request("/healthz", fields)))


def test_the_default_limits_hold_exactly(default_server: ServerProcess) -> None:
    status, _, body = exchange(default_server, request("/healthz", padded(32 * 1024)))
    assert status == 200, body
    assert_refused(exchange(default_server, request("/healthz", padded(32 * 1024 + 1))))
    # 100 fields in all: Host, Connection and 98 more.
    fields = [(f"X-{i}", "1") for i in range(98)]
    status, _, body = exchange(default_server, request("/healthz", fields))
    assert status == 200, body
    assert_refused(exchange(default_server, request("/healthz", [*fields, ("X-Last", "1")])))


def test_the_server_answers_on_after_refusals(default_server: ServerProcess) -> None:
    for _ in range(3):
        assert_refused(exchange(default_server, request("/healthz", [("X", "a" * MB)], end=False)))
    status, _, _ = exchange(default_server, request("/healthz", []))
    assert status == 200
    assert "request_refused" in default_server.log()


def test_flags_reach_every_worker(small_server: ServerProcess) -> None:
    """With ``--workers 2`` connections are spread over two processes: every one of them
    holds the limits given on the command line, not the defaults."""
    for _ in range(8):
        status, _, body = exchange(small_server, request("/healthz", padded(SMALL_BYTES)))
        assert status == 200, body
        assert_refused(exchange(small_server, request("/healthz", padded(SMALL_BYTES + 1))))
        fields = [(f"X-{i}", "1") for i in range(SMALL_HEADERS - 2)]
        status, _, body = exchange(small_server, request("/healthz", fields))
        assert status == 200, body
        assert_refused(exchange(small_server, request("/healthz", [*fields, ("X-Last", "1")])))
    assert_refused(exchange(small_server, request("/healthz", [("X", "a" * MB)], end=False)))


def read_response(s: socket.socket, buffered: bytearray) -> bytes:
    """One response from a kept-alive connection (its body sized by Content-Length)."""
    while b"\r\n\r\n" not in buffered:
        buffered += s.recv(65536)
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += s.recv(65536)
    buffered[:] = rest[length:]
    return head + b"\r\n\r\n" + rest[:length]


def test_keep_alive_then_an_oversized_head(small_server: ServerProcess) -> None:
    """On one connection: a request with a large body, then a head exactly at the limit
    (what the body took is not counted against it), then one over: refused and closed."""
    body = b"x" * 200_000
    large = b"POST /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(body)
    at_limit = request("/healthz", padded(SMALL_BYTES, close=False), close=False)
    over = request("/healthz", padded(SMALL_BYTES + 1, close=False), close=False)
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as s:
        buffered = bytearray()
        s.sendall(large + body)
        assert read_response(s, buffered).startswith(b"HTTP/1.1 405 ")
        s.sendall(at_limit)
        assert read_response(s, buffered).startswith(b"HTTP/1.1 200 ")
        s.sendall(over)
        rest = buffered
        while chunk := s.recv(65536):
            rest += chunk
    assert rest.startswith(b"HTTP/1.1 431 "), bytes(rest)
    assert b"connection: close" in rest


def test_no_redirect_from_the_server(default_server: ServerProcess) -> None:
    for target in ("/token/revoke/", "/t/x/token/revoke/", "/admin/v1/", "/healthz/"):
        raw = request(target, [("Tenant-ID", "nobody")], host="evil.example")
        status, headers, _ = exchange(default_server, raw)
        assert "location" not in headers, (target, status, headers)
        assert status in (400, 401, 404), (target, status)
