"""CORS per tenant (contract section 4.1, the Fetch standard's CORS protocol), as pure
ASGI middleware below tenancy.

It reads the tenant that ``TenancyMiddleware`` put in the scope, so it applies to the
tenant's public paths only: the token endpoints, the discovery documents and any other
public ``GET`` below the issuer; never to ``/admin``, ``/healthz``, ``/readyz`` or
``/metrics``, even when reached below an issuer URL. Requests answered before a tenant is
known (unknown ``Issuer``, no tenant at this URL) carry no CORS headers: there is no list
of origins to consult.

- An ``Origin`` is allowed when its normal form (scheme and host lower case, default
  port dropped) is one of the tenant's ``cors.allowed_origins``, or the list holds
  ``*`` (any http(s) origin; never ``null``). The answer echoes the request's origin and
  never carries ``Access-Control-Allow-Credentials``: client authentication here is an
  ``Authorization`` header or form parameters that the page's script sends itself, not
  cookies or browser-held credentials, so ``*`` cannot turn into "any site may act with
  the user's cookies".
- A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
  answered here and never reaches an endpoint, client authentication or the store:
  ``204`` with the methods of the path (``POST`` at the token endpoints, ``GET``
  elsewhere) and the request headers those endpoints read, or ``403`` without any
  ``Access-Control-*`` header when the origin is not allowed (CORS off included).
- Every other response of a tenant with CORS gets ``Vary: Origin`` (its CORS headers
  depend on the origin, so a cache must not hand one origin's answer to another), and,
  for an allowed origin, ``Access-Control-Allow-Origin`` and
  ``Access-Control-Expose-Headers``, errors included, so browser code can read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.directory import TenantView
from app.errors import Forbidden
from app.issuers import normalize_issuer
from app.middleware.request_context import log_fields
from app.middleware.tenancy import OPERATOR_PREFIXES, TENANT_KEY
from app.responses import error_response

ANY_ORIGIN = "*"
POST_PATHS = frozenset({"/token/revoke", "/token/introspect"})
"""Paths below the issuer whose one method is ``POST``; every other public path is ``GET``."""
ALLOW_HEADERS = "Authorization, Content-Type"
"""What the endpoints read. ``Issuer``/``Tenant-ID`` are left out: a browser's preflight
never carries them, so a tenant named by header cannot be resolved for it, and below
its issuer URL they would only repeat what the URL says."""
EXPOSE_HEADERS = "WWW-Authenticate, Retry-After, X-Request-Id"
MAX_LOGGED_ORIGIN = 200
MAX_AGE_S = 600
"""How long a browser may reuse a preflight answer: a changed ``cors.allowed_origins``
reaches browsers within ten minutes (the service itself sees it on the next request)."""


@lru_cache(maxsize=1024)
def normalize_origin(origin: str) -> str | None:
    """The origin's normal form; None for what is not an http(s) origin (``null``, a
    path, user information). Memoised: a service sees few distinct origins."""
    try:
        normalized = normalize_issuer(origin)
    except ValueError:
        return None
    scheme_end = normalized.index("://") + 3
    return None if "/" in normalized[scheme_end:] else normalized


@lru_cache(maxsize=4096)
def _allowed(origins: tuple[str, ...]) -> tuple[frozenset[str], bool]:
    """A tenant's list as a set of normal forms, and whether it holds ``*``."""
    normal = {normalize_origin(o) for o in origins if o != ANY_ORIGIN}
    return frozenset(o for o in normal if o is not None), ANY_ORIGIN in origins


def origin_allowed(tenant: TenantView, origin: str | None) -> bool:
    if origin is None or not tenant.settings.cors_allowed_origins:
        return False
    normal = normalize_origin(origin)
    if normal is None:
        return False
    listed, any_origin = _allowed(tenant.settings.cors_allowed_origins)
    return any_origin or normal in listed


class CorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant: TenantView | None = scope.get(TENANT_KEY)
        if (
            tenant is None
            or (not tenant.settings.cors_allowed_origins and scope["method"] != "OPTIONS")
            or scope["path"].startswith(OPERATOR_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        origin, request_method = _cors_headers(scope)
        allowed = origin_allowed(tenant, origin)
        if scope["method"] == "OPTIONS" and origin is not None and request_method is not None:
            await self._preflight(scope, allowed, origin)(scope, receive, send)
            return
        if not tenant.settings.cors_allowed_origins:
            await self.app(scope, receive, send)
            return
        added: list[tuple[bytes, bytes]] = []
        if allowed and origin is not None:
            added = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*_vary_origin(message.get("headers", [])), *added]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _preflight(scope: Scope, allowed: bool, origin: str) -> Response:
        fields = log_fields(scope)
        fields["endpoint"] = "cors_preflight"
        if not allowed:
            fields.update(error=Forbidden.error, cors_origin=origin[:MAX_LOGGED_ORIGIN])
            return error_response(Forbidden("the origin is not allowed for this tenant"))
        method = "POST" if scope["path"] in POST_PATHS else "GET"
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": method,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(MAX_AGE_S),
                "Vary": "Origin",
            },
        )


def _cors_headers(scope: Scope) -> tuple[str | None, str | None]:
    """``Origin`` (None when absent or repeated) and ``Access-Control-Request-Method``."""
    origin: str | None = None
    origins = 0
    request_method: str | None = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origins += 1
            origin = value.decode("latin-1").strip()
        elif name == b"access-control-request-method":
            request_method = value.decode("latin-1").strip()
    return (origin if origins == 1 else None), request_method


def _vary_origin(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Origin`` in their ``Vary``."""
    out: list[tuple[bytes, bytes]] = []
    varies = False
    for name, value in headers:
        if name.lower() == b"vary":
            varies = True
            if not {t.strip() for t in value.lower().split(b",")} & {b"origin", b"*"}:
                value += b", Origin"
        out.append((name, value))
    if not varies:
        out.append((b"vary", b"Origin"))
    return out
