"""Outbound HTTP requests to URLs that tenants give (key sets, receivers of Security
Event Tokens), held to host rules: the rules and the checks here, the GET of a JSON
document (``Fetcher``); POSTs to a receiver go through ``app.outbound_channel``.

A tenant's admin chooses these URLs, so a fetch must not become a way into the
operator's network (server-side request forgery):

- the host must match the tenant's ``key_fetch.allowed_hosts`` (``*`` any host,
  ``auth.example`` that host, ``*.example`` its subdomains);
- every address the name resolves to must be public: loopback, private, link-local,
  shared, multicast and reserved ranges are refused unless the operator passed
  ``--fetch-allow-private``;
- the connection goes to the very address that was checked, with the name sent as
  ``Host`` and as TLS SNI (the certificate is still verified against the name), so a
  DNS answer that changes between the check and the connection cannot redirect it;
- redirects are not followed, the time is bounded and so is the body (read as sent:
  only ``identity`` is asked for, so a small compressed answer cannot expand past it).

A ``Fetcher`` keeps no connection alive: its pool would know a connection by the checked
address alone, and a connection checked for one name must never carry a request for
another name at that address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_BYTES = 64 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class FetchRefused(Exception):
    """The URL may not be fetched, or did not answer usably; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class HostRules:
    patterns: tuple[str, ...]
    """``key_fetch.allowed_hosts`` of the tenant."""
    allow_private: bool = False
    """The operator's ``--fetch-allow-private``."""

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for pattern in self.patterns:
            if pattern == "*" or pattern == host:
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        return False

    def address_allowed(self, address: str) -> bool:
        if self.allow_private:
            return True
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip
        return ip.is_global and not ip.is_multicast


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv6 form leads to (mapped, compatible, NAT64, 6to4):
    Python's ``is_global`` judges ``64:ff9b::7f00:1`` by its IPv6 range alone."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


async def resolve(host: str, port: int, rules: HostRules) -> str:
    """One address of ``host`` that the rules allow, or ``FetchRefused``.

    Every address the name has must be allowed, not just one: a name with a public and a
    private address would otherwise reach the private one on some connections.
    """
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise FetchRefused(f"cannot resolve {host}: {exc.strerror or exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchRefused(f"{host} has no address")
    for address in addresses:
        if not rules.address_allowed(address):
            raise FetchRefused(f"{host} resolves to a non-public address ({address})")
    return addresses[0]


def check_url(url: str, rules: HostRules) -> tuple[SplitResult, str, int]:
    """The URL's parts, host and port, or ``FetchRefused`` when it is not an http(s) URL
    or its host is not in the rules' patterns (addresses are checked when resolving)."""
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise FetchRefused("not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FetchRefused("not an http(s) URL")
    host = parts.hostname
    if not rules.host_allowed(host):
        raise FetchRefused(f"{host} is not in key_fetch.allowed_hosts")
    return parts, host, explicit_port or (443 if parts.scheme == "https" else 80)


class Fetcher:
    """GETs JSON documents under host rules, each on a connection of its own (see the
    module's docstring)."""

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        if transport is None:
            transport = httpx.AsyncHTTPTransport(
                verify=verify,
                trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            headers={
                "Accept": "application/json, application/jwk-set+json",
                "Accept-Encoding": "identity",
            },
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def get_json(self, url: str, rules: HostRules) -> Any:
        """The JSON document at ``url``; ``FetchRefused`` for a refused host, an error
        status, a redirect, a body over the limit, a time-out or invalid JSON."""
        parts, host, port = check_url(url, rules)
        try:
            async with asyncio.timeout(self.timeout_s):
                address = await resolve(host, port, rules)
                body = await self._get(parts, host, address, port)
        except TimeoutError:
            raise FetchRefused(f"no answer from {host} within {self.timeout_s} s") from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise FetchRefused("the answer is not JSON") from None

    def _request(self, parts: SplitResult, host: str, address: str, port: int) -> httpx.Request:
        """A GET of the checked ``address``, with ``host`` as Host and TLS SNI."""
        scheme = parts.scheme
        literal = f"[{address}]" if ":" in address else address
        target = f"{scheme}://{literal}:{port}{parts.path or '/'}"
        if parts.query:
            target += f"?{parts.query}"
        default_port = port == (443 if scheme == "https" else 80)
        name = f"[{host}]" if ":" in host else host
        headers = {"Host": name if default_port else f"{name}:{port}"}
        return self._client.build_request(
            "GET", target, headers=headers, extensions={"sni_hostname": host}
        )

    async def _get(self, parts: SplitResult, host: str, address: str, port: int) -> bytes:
        request = self._request(parts, host, address, port)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchRefused(f"fetching {host} failed: {type(exc).__name__}") from None
        try:
            if response.status_code != 200:
                raise FetchRefused(f"{host} answered {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                raise FetchRefused(f"the answer is over {self.max_bytes} bytes")
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchRefused(f"{host} answered in {encoding}; only identity was accepted")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.max_bytes:
                    raise FetchRefused(f"the answer is over {self.max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise FetchRefused(f"reading from {host} failed: {type(exc).__name__}") from None
        finally:
            await response.aclose()
