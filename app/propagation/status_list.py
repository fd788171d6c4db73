"""The Token Status List endpoints of a tenant (the IETF OAuth Token Status List draft),
where it sets ``status_list.enabled``; public, as the draft's lists are.

- ``GET {issuer}/status-lists/{n}``: list ``n``'s Status List Token
  (``application/statuslist+jwt``), with an ``ETag`` (``If-None-Match`` → 304) and
  ``Cache-Control: max-age`` of the tenant's ``status_list.ttl_s``, gzip-coded where
  the client accepts it (as the draft asks). Only the JWT form is
  served (an ``Accept`` that rules it out: 406), and only the current list (``time``,
  the draft's historical resolution: 501).
- ``GET {issuer}/status-lists``: the Status List Aggregation, ``{"status_lists": [uri…]}``,
  named in discovery as ``status_list_aggregation_endpoint``.

A list that does not exist (yet), or a tenant without lists: 404.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.directory import TenantView
from app.errors import NotAcceptable, NotFound, NotSupported
from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.propagation import status_list_tokens
from app.propagation.status_indexes import list_uri
from app.services import Services

MEDIA_TYPE = "application/statuslist+jwt"
ACCEPTED = frozenset({MEDIA_TYPE, "application/*", "*/*"})
VARY = "Accept, Accept-Encoding, Issuer, Tenant-ID"
"""A tenant is also named by headers (contract section 3): shared caches must key on them."""
GZIP_ETAG_SUFFIX = "-gzip"
"""The gzip-coded representation is another one: its strong ETag differs."""


def _enabled_tenant(request: Request, endpoint: str) -> tuple[Services, TenantView]:
    log_fields(request.scope)["endpoint"] = endpoint
    tenant: TenantView = request.scope[TENANT_KEY]
    if not tenant.settings.status_list_enabled:
        raise NotFound("this tenant has no status list")
    services: Services = request.app.state.services
    return services, tenant


def _caching(tenant: TenantView) -> dict[str, str]:
    return {"Cache-Control": f"max-age={tenant.settings.status_list_ttl_s}", "Vary": VARY}


def _accepted(header: str, wanted: frozenset[str]) -> bool:
    """Whether a list header (``Accept``, ``Accept-Encoding``) names one of ``wanted``
    with a quality above 0."""
    for member in header.split(","):
        name, *parameters = (part.strip() for part in member.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name.lower() in wanted and quality > 0:
            return True
    return False


def accepts_jwt(accept: str | None) -> bool:
    """Whether an ``Accept`` header allows the JWT form (none: it does)."""
    return not accept or not accept.strip() or _accepted(accept, ACCEPTED)


def accepts_gzip(accept_encoding: str | None) -> bool:
    return bool(accept_encoding) and _accepted(accept_encoding or "", frozenset({"gzip"}))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: weak comparison, ``*`` matches any."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


async def status_list_endpoint(request: Request) -> Response:
    services, tenant = _enabled_tenant(request, "status_list")
    if "time" in request.query_params:
        raise NotSupported("historical status lists are not kept")
    if not accepts_jwt(request.headers.get("accept")):
        raise NotAcceptable(f"status lists are served as {MEDIA_TYPE} only")
    number: int = request.path_params["number"]
    if number < 1 or number > await status_list_tokens.lists(services, tenant, number):
        raise NotFound("no such status list")
    token = await status_list_tokens.current(services, tenant, number)
    gzipped = accepts_gzip(request.headers.get("accept-encoding"))
    etag = token.etag[:-1] + GZIP_ETAG_SUFFIX + '"' if gzipped else token.etag
    headers = {**_caching(tenant), "ETag": etag}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        return Response(token.gzipped, media_type=MEDIA_TYPE, headers=headers)
    return Response(token.token, media_type=MEDIA_TYPE, headers=headers)


async def status_list_aggregation_endpoint(request: Request) -> Response:
    services, tenant = _enabled_tenant(request, "status_list_aggregation")
    count = await status_list_tokens.lists(services, tenant)
    uris = [list_uri(tenant, number) for number in range(1, count + 1)]
    return JSONResponse({"status_lists": uris}, headers=_caching(tenant))
