"""Outbound fetches held to host rules, against a real HTTP server on the loopback."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.outbound import Fetcher, FetchRefused, HostRules

ANY_HOST_PRIVATE_OK = HostRules(("*",), allow_private=True)
LIMIT = 1024

Route = Callable[[BaseHTTPRequestHandler], None]


def answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def answer_json(handler: BaseHTTPRequestHandler, document: Any) -> None:
    answer(handler, 200, json.dumps(document).encode(), {"Content-Type": "application/json"})


def answer_chunked(handler: BaseHTTPRequestHandler, chunks: list[bytes]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for chunk in [*chunks, b""]:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))


@dataclass
class LocalServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1:0 in a thread, with routes the test sets.

    ``seen`` records (path, Host header, Accept-Encoding) of every request; ``release``
    is set at teardown so that a handler blocking on it ends.
    """

    tls: ssl.SSLContext | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                headers = self.headers
                server.seen.append((path, headers["Host"], headers["Accept-Encoding"]))
                route = server.routes.get(path)
                if route is None:
                    answer(self, 404)
                else:
                    route(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.httpd.server_address[1]
        return port

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.seen]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    client = Fetcher(max_bytes=LIMIT)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names the test makes up, resolved by the event loop to the addresses given here;
    ``dns["asked"]`` lists the names looked up."""
    table: dict[str, list[str]] = {"asked": []}
    real = asyncio.get_running_loop().getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in table:
            return await real(host, port, **kwargs)
        table["asked"].append(host)
        family = socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return table


JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "k1"}]}


# Host rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("keys.example", True),
        ("a.keys.example", True),
        ("KEYS.Example.", True),
        ("example", False),
        ("keysexample", False),
        ("keys.example.org", False),
        ("auth.test", True),
        ("x.auth.test", False),
    ],
)
def test_host_patterns(host: str, allowed: bool) -> None:
    rules = HostRules(("*.example", "auth.test"))
    assert rules.host_allowed(host) is allowed


def test_the_star_pattern_allows_any_host() -> None:
    assert HostRules(("*",)).host_allowed("anything.at.all")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("::ffff:93.184.216.34", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104
        ("224.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:10.0.0.1", False),
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
    ],
)
def test_only_public_addresses_unless_the_operator_allows_private(
    address: str, public: bool
) -> None:
    assert HostRules(("*",)).address_allowed(address) is public
    assert HostRules(("*",), allow_private=True).address_allowed(address)


# Refusals before any connection --------------------------------------------------------


async def test_a_host_not_in_the_patterns_is_refused_before_resolving(
    fetcher: Fetcher, dns: dict[str, list[str]]
) -> None:
    dns["keys.elsewhere.test"] = ["127.0.0.1"]
    with pytest.raises(FetchRefused, match="allowed_hosts"):
        await fetcher.get_json(
            "http://keys.elsewhere.test/jwks", HostRules(("*.example",), allow_private=True)
        )
    assert dns["asked"] == []


async def test_a_subdomain_pattern_lets_the_fetch_through(
    fetcher: Fetcher, server: LocalServer, dns: dict[str, list[str]]
) -> None:
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    dns["keys.idp.example"] = ["127.0.0.1"]
    rules = HostRules(("*.idp.example",), allow_private=True)
    assert await fetcher.get_json(server.url("/jwks", "keys.idp.example"), rules) == JWKS


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/jwks",
        "file:///etc/passwd",
        "http:///jwks",
        "http://127.0.0.1:99999/jwks",
        "http://127.0.0.1:port/jwks",
        "http://[::1/jwks",
    ],
)
async def test_a_url_that_is_not_http_is_refused(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchRefused):
        await fetcher.get_json(url, ANY_HOST_PRIVATE_OK)


async def test_loopback_is_refused_without_allow_private(
    fetcher: Fetcher, server: LocalServer
) -> None:
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    with pytest.raises(FetchRefused, match="non-public"):
        await fetcher.get_json(server.url("/jwks"), HostRules(("*",)))
    assert server.seen == []


async def test_loopback_is_fetched_with_allow_private(
    fetcher: Fetcher, server: LocalServer
) -> None:
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    assert await fetcher.get_json(server.url("/jwks?x=1"), ANY_HOST_PRIVATE_OK) == JWKS
    assert server.seen == [("/jwks", f"127.0.0.1:{server.port}", "identity")]


async def test_a_name_that_resolves_to_a_private_address_is_refused(
    fetcher: Fetcher, server: LocalServer
) -> None:
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    with pytest.raises(FetchRefused, match=r"localhost resolves to a non-public address"):
        await fetcher.get_json(server.url("/jwks", "localhost"), HostRules(("localhost",)))
    assert server.seen == []


async def test_every_address_of_a_name_must_be_public(
    fetcher: Fetcher, dns: dict[str, list[str]]
) -> None:
    dns["mixed.example"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(FetchRefused, match=r"10\.0\.0\.7"):
        await fetcher.get_json("https://mixed.example/jwks", HostRules(("*",)))


@pytest.mark.parametrize("literal", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::1]"])
async def test_ipv6_forms_of_loopback_are_refused(fetcher: Fetcher, literal: str) -> None:
    with pytest.raises(FetchRefused, match="non-public"):
        await fetcher.get_json(f"http://{literal}:8080/jwks", HostRules(("*",)))


async def test_an_unresolvable_name_is_refused(fetcher: Fetcher, dns: dict[str, list[str]]) -> None:
    dns["nowhere.example"] = []
    with pytest.raises(FetchRefused, match="no address"):
        await fetcher.get_json("https://nowhere.example/jwks", HostRules(("*",)))


# The connection goes to the checked address --------------------------------------------


async def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(
    fetcher: Fetcher, server: LocalServer, dns: dict[str, list[str]]
) -> None:
    # keys.pinned.test exists only in this test's table: only the checked address can
    # have been used for the connection, and the name was looked up once.
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    dns["keys.pinned.test"] = ["127.0.0.1"]
    url = server.url("/jwks", "keys.pinned.test")
    assert await fetcher.get_json(url, ANY_HOST_PRIVATE_OK) == JWKS
    assert dns["asked"] == ["keys.pinned.test"]
    assert server.seen == [("/jwks", f"keys.pinned.test:{server.port}", "identity")]


def _certificates(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for ``name`` only: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_tls_sends_the_name_as_sni_and_checks_the_certificate_against_it(
    tmp_path: Path, dns: dict[str, list[str]]
) -> None:
    ca, cert, key = _certificates(tmp_path, "keys.tls.test")
    names: list[str | None] = []
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.sni_callback = lambda sock, name, ctx: names.append(name)
    server = LocalServer(tls=tls)
    server.routes["/jwks"] = lambda h: answer_json(h, JWKS)
    client = Fetcher(verify=ssl.create_default_context(cafile=str(ca)))
    dns["keys.tls.test"] = ["127.0.0.1"]
    dns["other.tls.test"] = ["127.0.0.1"]
    try:
        url = server.url("/jwks", "keys.tls.test")
        assert await client.get_json(url, ANY_HOST_PRIVATE_OK) == JWKS
        assert names == ["keys.tls.test"]
        # Same address, a name the certificate does not cover: no connection checked
        # for keys.tls.test may carry it.
        for host in ("other.tls.test", "127.0.0.1"):
            with pytest.raises(FetchRefused, match="ConnectError"):
                await client.get_json(server.url("/jwks", host), ANY_HOST_PRIVATE_OK)
        assert server.paths() == ["/jwks"]
    finally:
        await client.close()
        server.stop()


# What comes back -----------------------------------------------------------------------


async def test_a_redirect_is_not_followed(fetcher: Fetcher, server: LocalServer) -> None:
    server.routes["/jwks"] = lambda h: answer(h, 302, headers={"Location": "/moved"})
    server.routes["/moved"] = lambda h: answer_json(h, JWKS)
    with pytest.raises(FetchRefused, match="answered 302"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)
    assert server.paths() == ["/jwks"]


@pytest.mark.parametrize("status", [201, 204, 404, 500, 503])
async def test_a_status_other_than_200_is_refused(
    fetcher: Fetcher, server: LocalServer, status: int
) -> None:
    body = b"" if status == 204 else json.dumps(JWKS).encode()
    server.routes["/jwks"] = lambda h: answer(h, status, body)
    with pytest.raises(FetchRefused, match=f"answered {status}"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)


async def test_a_body_at_the_limit_is_read(fetcher: Fetcher, server: LocalServer) -> None:
    document = {"pad": "x" * (LIMIT - 11)}
    body = json.dumps(document).encode()
    assert len(body) == LIMIT
    server.routes["/jwks"] = lambda h: answer(h, 200, body)
    assert await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK) == document


async def test_a_declared_length_over_the_limit_is_refused(
    fetcher: Fetcher, server: LocalServer
) -> None:
    body = json.dumps({"pad": "x" * LIMIT}).encode()
    server.routes["/jwks"] = lambda h: answer(h, 200, body)
    with pytest.raises(FetchRefused, match="over 1024 bytes"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)


async def test_a_chunked_body_over_the_limit_is_refused(
    fetcher: Fetcher, server: LocalServer
) -> None:
    chunks = [b'{"pad": "', *[b"x" * 200] * 6, b'"}']
    server.routes["/jwks"] = lambda h: answer_chunked(h, chunks)
    with pytest.raises(FetchRefused, match="over 1024 bytes"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)


async def test_a_chunked_body_within_the_limit_is_read(
    fetcher: Fetcher, server: LocalServer
) -> None:
    body = json.dumps(JWKS).encode()
    server.routes["/jwks"] = lambda h: answer_chunked(h, [body[:10], body[10:]])
    assert await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK) == JWKS


async def test_a_compressed_body_is_refused_not_inflated(
    fetcher: Fetcher, server: LocalServer
) -> None:
    # 100 KiB of JSON squeezed under the limit: inflated, it would be 100 times over it.
    bomb = gzip.compress(b'{"pad": "' + b"x" * (100 * LIMIT) + b'"}')
    assert len(bomb) < LIMIT
    server.routes["/jwks"] = lambda h: answer(h, 200, bomb, {"Content-Encoding": "gzip"})
    with pytest.raises(FetchRefused, match="gzip"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)


@pytest.mark.parametrize("body", [b"<html>not json</html>", b"\xff\xfe\xfd", b"[" * LIMIT])
async def test_a_body_that_is_not_json_is_refused(
    fetcher: Fetcher, server: LocalServer, body: bytes
) -> None:
    server.routes["/jwks"] = lambda h: answer(h, 200, body)
    with pytest.raises(FetchRefused, match="not JSON"):
        await fetcher.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)


async def test_an_answer_that_does_not_come_in_time_is_refused(server: LocalServer) -> None:
    def stalled(handler: BaseHTTPRequestHandler) -> None:
        server.release.wait(30)  # set at teardown

    server.routes["/jwks"] = stalled
    client = Fetcher(timeout_s=0.3)
    try:
        with pytest.raises(FetchRefused, match=r"Timeout|no answer"):
            await client.get_json(server.url("/jwks"), ANY_HOST_PRIVATE_OK)
    finally:
        await client.close()


async def test_a_closed_port_is_refused(fetcher: Fetcher, server: LocalServer) -> None:
    url = server.url("/jwks")
    server.stop()
    with pytest.raises(FetchRefused, match="ConnectError"):
        await fetcher.get_json(url, ANY_HOST_PRIVATE_OK)


async def test_an_ipv6_literal_goes_in_brackets_in_the_host_header() -> None:
    # No IPv6 listener is needed to see what would be sent.
    sent: list[tuple[str, str]] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append((str(request.url), request.headers["Host"]))
        return httpx.Response(200, stream=httpx.ByteStream(json.dumps(JWKS).encode()))

    client = Fetcher(transport=httpx.MockTransport(record))
    try:
        assert await client.get_json("http://[::1]:8080/jwks", ANY_HOST_PRIVATE_OK) == JWKS
        assert await client.get_json("http://[::1]/jwks", ANY_HOST_PRIVATE_OK) == JWKS
    finally:
        await client.close()
    assert sent == [
        ("http://[::1]:8080/jwks", "[::1]:8080"),
        ("http://[::1]/jwks", "[::1]"),
    ]
