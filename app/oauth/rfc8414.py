"""Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0).

Served at ``{issuer}/.well-known/openid-configuration``,
``{issuer}/.well-known/oauth-authorization-server`` and the RFC 8414 section 3.1 form
``/.well-known/oauth-authorization-server{issuer-path}`` (the tenancy middleware maps
that form to the tenant). A disabled endpoint is left out.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.directory import TenantView
from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.oauth.client_auth import SUPPORTED_METHODS

SIGNING_METHODS = ("client_secret_jwt", "private_key_jwt")


def metadata(tenant: TenantView) -> dict[str, Any]:
    s = tenant.settings
    methods = [m for m in SUPPORTED_METHODS if m in s.auth_methods]
    algs = list(s.assertion_algs) if any(m in methods for m in SIGNING_METHODS) else []
    out: dict[str, Any] = {"issuer": s.issuer}
    if s.revocation_enabled:
        out["revocation_endpoint"] = f"{tenant.issuer}/token/revoke"
        out["revocation_endpoint_auth_methods_supported"] = methods
        out["revocation_endpoint_auth_signing_alg_values_supported"] = algs
    if s.introspection_enabled:
        out["introspection_endpoint"] = f"{tenant.issuer}/token/introspect"
        out["introspection_endpoint_auth_methods_supported"] = [m for m in methods if m != "none"]
        out["introspection_endpoint_auth_signing_alg_values_supported"] = algs
    return out


async def discovery_endpoint(request: Request) -> Response:
    log_fields(request.scope)["endpoint"] = "discovery"
    return JSONResponse(metadata(request.scope[TENANT_KEY]))
