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

from app.auth_methods import AuthMethod, method_for_alg
from app.directory import TenantView
from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.oauth import rfc6750
from app.propagation import global_revocation, status_indexes


def metadata(tenant: TenantView) -> dict[str, Any]:
    s = tenant.settings
    methods = [m.value for m in AuthMethod if m in s.auth_methods]
    # An algorithm is listed only where the method it belongs to is allowed: HS* with
    # client_secret_jwt, the asymmetric ones with private_key_jwt.
    algs = [alg for alg in s.assertion_algs if method_for_alg(alg) in s.auth_methods]
    out: dict[str, Any] = {"issuer": s.issuer}
    # Always: an empty key set until the tenant's first signature (app.propagation).
    out["jwks_uri"] = f"{tenant.issuer}/jwks"
    if s.revocation_enabled:
        out["revocation_endpoint"] = f"{tenant.issuer}/token/revoke"
        out["revocation_endpoint_auth_methods_supported"] = methods
        out["revocation_endpoint_auth_signing_alg_values_supported"] = algs
    if s.introspection_enabled:
        out["introspection_endpoint"] = f"{tenant.issuer}/token/introspect"
        confidential = [m for m in methods if m != AuthMethod.NONE]
        out["introspection_endpoint_auth_methods_supported"] = confidential
        out["introspection_endpoint_auth_signing_alg_values_supported"] = algs
    # Always: any client with the scope may read it (app.propagation.feed).
    out["revocation_events_endpoint"] = f"{tenant.issuer}/revocation/events"
    out["revocation_events_endpoint_auth_methods_supported"] = [
        m for m in methods if m != AuthMethod.NONE
    ]
    if s.global_revocation_enabled:
        out["global_token_revocation_endpoint"] = f"{tenant.issuer}{global_revocation.PATH}"
        out["global_token_revocation_endpoint_auth_methods_supported"] = [
            *(m for m in methods if m != AuthMethod.NONE),
            rfc6750.METHOD,
        ]
    if s.status_list_enabled:
        # The Token Status List draft's name for it in authorization server metadata.
        out["status_list_aggregation_endpoint"] = status_indexes.aggregation_uri(tenant)
    return out


async def discovery_endpoint(request: Request) -> Response:
    log_fields(request.scope)["endpoint"] = "discovery"
    return JSONResponse(metadata(request.scope[TENANT_KEY]))
