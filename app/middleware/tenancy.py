"""Tenant resolution (contract section 3), as pure ASGI middleware.

A request names its tenant by the ``Issuer`` header, the ``Tenant-ID`` header or its
URL (the issuer that is the longest whole-segment prefix). The resolved tenant goes into
``scope["revocation.tenant"]``; with the URL form, ``scope["path"]`` becomes the path
below the issuer, so the router sees ``/token/revoke`` whatever the issuer's path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from app.directory import Directory, TenantView
from app.errors import InvalidRequest, NotFound, ServiceError
from app.responses import error_response
from app.settings import TENANT_ID_RE

TENANT_KEY = "revocation.tenant"
CLIENT_ADDRESS_KEY = "revocation.client_address"
OPERATOR_PREFIXES = ("/admin/", "/healthz", "/readyz", "/metrics", "/openapi.json")
RFC8414_PREFIX = "/.well-known/oauth-authorization-server"
MEMO_LIMIT = 4096
MAX_ADDRESS = 64


class TrustedProxies:
    """``--forwarded-allow-ips``: addresses or networks, or ``*``."""

    def __init__(self, entries: Iterable[str]) -> None:
        entries = list(entries)
        self.any = "*" in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != "*"]
        self._known: dict[str, bool] = {}
        """Answers by peer address: a service sees few peers (its proxies), and parsing
        an address on every request was a measurable share of the request's cost."""

    def __contains__(self, host: str | None) -> bool:
        if host is None:
            return False
        if self.any:
            return True
        known = self._known.get(host)
        if known is None:
            known = self._check(host)
            if len(self._known) >= MEMO_LIMIT:
                self._known.clear()
            self._known[host] = known
        return known

    def _check(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


class TenancyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        directory: Directory | None = None,
        forwarded_allow_ips: Iterable[str] = ("127.0.0.1",),
    ) -> None:
        self.app = app
        self.directory = directory
        self.proxies = TrustedProxies(forwarded_allow_ips)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Imported here: request_context imports (through metrics) this module.
        from app.middleware.request_context import log_fields

        # Every request's, the operator's too: the proxy trust decided here, once.
        address = source_address(scope, self.proxies)
        scope[CLIENT_ADDRESS_KEY] = address
        log_fields(scope)["source_address"] = address
        if scope["path"].startswith(OPERATOR_PREFIXES):
            await self.app(scope, receive, send)
            return
        directory = self.directory or scope["app"].state.services.directory
        try:
            await directory.refresh()
            view, path = resolve(scope, directory, self.proxies)
        except ServiceError as exc:
            # What was looked up, for the canonical line: a 404 here is most often a
            # request sent to another host or port than the issuer's.
            log_fields(scope).update(
                error=exc.error,
                error_description=exc.description,
                origin=_seen_origin(scope, self.proxies),
            )
            await error_response(exc)(scope, receive, send)
            return
        structlog.contextvars.bind_contextvars(tenant_id=view.tenant_id)
        scope[TENANT_KEY] = view
        scope["revocation.route_path"] = scope["path"]
        scope["path"] = path
        await self.app(scope, receive, send)


def source_address(scope: Scope, proxies: TrustedProxies) -> str | None:
    """Where the request comes from: the connection's peer or, when the peer is a trusted
    proxy, the right-most ``X-Forwarded-For`` entry that is not a trusted proxy itself
    (entries left of it were written by the client and prove nothing). When every entry
    is trusted, the left-most. None when the server knows no peer (a Unix socket)."""
    client = scope.get("client")
    peer = normal_address(client[0]) if client else None
    if peer not in proxies:
        return peer
    forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
    if not forwarded:
        return peer
    # Repeated headers are one list, in order (RFC 9110 section 5.3).
    entries = [e.strip() for e in b",".join(forwarded).decode("latin-1").split(",")]
    entries = [e for e in entries if e]
    for entry in reversed(entries):
        address = normal_address(entry)
        if address not in proxies:
            return address
    return normal_address(entries[0]) if entries else peer


@lru_cache(maxsize=MEMO_LIMIT)
def normal_address(text: str) -> str:
    """One spelling per address (``::FFFF:192.0.2.1`` is ``192.0.2.1``); a port some
    proxies append is dropped; what is no IP address is kept as written, less spaces and
    64 characters at most: a trusted proxy wrote it."""
    candidate = text
    if text.startswith("["):
        candidate = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        candidate = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return "".join(text.split())[:MAX_ADDRESS]
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def client_address(scope: Scope) -> str | None:
    """The request's source address, as ``TenancyMiddleware`` resolved it."""
    address: str | None = scope.get(CLIENT_ADDRESS_KEY)
    return address


def _headers(scope: Scope) -> dict[bytes, str]:
    out: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in (b"issuer", b"tenant-id", b"host", b"x-forwarded-proto", b"x-forwarded-host"):
            if name in out:
                raise InvalidRequest(f"the {name.decode()} header is repeated")
            out[name] = value.decode("latin-1").strip()
    return out


def _seen_origin(scope: Scope, proxies: TrustedProxies) -> str:
    """The scheme and host a request was matched on (a trusted proxy's forwarded ones)."""
    try:
        scheme, host = request_origin(scope, _headers(scope), proxies)
    except ServiceError:  # a repeated header: the first of each
        scheme, host = scope.get("scheme", "http"), _server_host(scope)
        host = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"host"), host)
    return f"{scheme}://{host}"


def request_origin(
    scope: Scope, headers: dict[bytes, str], proxies: TrustedProxies
) -> tuple[str, str]:
    scheme = scope.get("scheme", "http")
    host = headers.get(b"host") or _server_host(scope)
    client = scope.get("client")
    if client and client[0] in proxies:
        forwarded_proto = headers.get(b"x-forwarded-proto")
        forwarded_host = headers.get(b"x-forwarded-host")
        if forwarded_proto:
            scheme = forwarded_proto.split(",")[0].strip() or scheme
        if forwarded_host:
            host = forwarded_host.split(",")[0].strip() or host
    return scheme, host


def _server_host(scope: Scope) -> str:
    server = scope.get("server")
    if not server:
        return ""
    host, port = server
    return f"{host}:{port}" if port else str(host)


def resolve(scope: Scope, directory: Directory, proxies: TrustedProxies) -> tuple[TenantView, str]:
    headers = _headers(scope)
    named: list[TenantView] = []
    if (issuer := headers.get(b"issuer")) is not None:
        view = directory.by_issuer(issuer)
        if view is None:
            raise InvalidRequest("unknown issuer")
        named.append(view)
    if (tenant_id := headers.get(b"tenant-id")) is not None:
        view = directory.tenant(tenant_id) if TENANT_ID_RE.match(tenant_id) else None
        if view is None:
            raise InvalidRequest("unknown tenant")
        named.append(view)

    path: str = scope["path"]
    scheme, host = request_origin(scope, headers, proxies)
    by_url = _match_url(directory, scheme, host, path)
    if by_url is not None:
        if named and by_url[0].tenant_id != named[0].tenant_id:
            # A URL under one issuer with a header naming another tenant.
            raise InvalidRequest("the request names two different tenants")
        named.append(by_url[0])
        path = by_url[1]
    if not named:
        raise NotFound("no tenant at this URL")
    if any(v.tenant_id != named[0].tenant_id for v in named):
        raise InvalidRequest("the request names two different tenants")
    view = named[0]
    if not view.settings.enabled:
        raise NotFound("no tenant at this URL")
    return view, path


def _match_url(
    directory: Directory, scheme: str, host: str, path: str
) -> tuple[TenantView, str] | None:
    if path.startswith(RFC8414_PREFIX + "/"):
        # RFC 8414 section 3.1: the well-known suffix goes between host and issuer path.
        matched = directory.by_url(scheme, host, path[len(RFC8414_PREFIX) :])
        if matched is not None and matched[1] == "/":
            return matched[0], RFC8414_PREFIX
        return None
    return directory.by_url(scheme, host, path)
