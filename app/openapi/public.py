"""The public endpoints (contract section 4) and the service's own routes (section 7),
keyed by ``(METHOD, path)`` as ``app.routes`` spells them."""

from __future__ import annotations

from app.oauth.form import FORM_TYPE
from app.openapi.components import (
    ANYONE,
    CLIENT_AUTH,
    RETRY_AFTER,
    json_answer,
    operation,
    param,
    request_body,
    response,
)
from app.openapi.schemas import closed, ref
from app.types import JSON

PUBLIC = "public"
DISCOVERY = "discovery"
SERVICE = "service"

TENANT_HEADERS = [param("TenantIdHeader"), param("IssuerHeader")]
BELOW_THE_ISSUER = (
    "Served below the tenant's issuer ({issuer}/…) and, with a Tenant-ID or Issuer header, "
    "at this path on any host (contract section 3)."
)
ISSUER_SERVERS: list[JSON] = [
    {
        "url": "{issuer}",
        "description": "Below the tenant's issuer URL (or an alias).",
        "variables": {"issuer": {"default": "http://127.0.0.1:8000/t/demo"}},
    },
    {"url": "/", "description": "Any host, the tenant named by Tenant-ID or Issuer."},
]
REVOCATION_200: JSON = {
    "description": "Revoked, already revoked, expired, unknown or malformed: the answer "
    "is the same (RFC 7009 section 2.2), an empty body. A tenant's response_mapping "
    "plugins may make it a JSON object; with callback= (JSONP, where the tenant enables "
    "it) it is an application/javascript call of the callback, 200 whatever the outcome.",
}
ERRORS: JSON = {
    "400": response("InvalidRequest"),
    "401": response("InvalidClient"),
    "404": response("NoTenant"),
    "413": response("TooLarge"),
    "429": response("TooManyFailures"),
    "500": response("ServerError"),
    "503": response("Unavailable"),
}
DISCOVERY_ANSWERS: JSON = {
    "200": json_answer(
        ref("ServerMetadata"), "The tenant's metadata; a disabled endpoint is left out."
    ),
    "400": response("InvalidRequest"),
    "404": response("NoTenant"),
    "503": response("Unavailable"),
}
STATUS_ONLY: JSON = closed({"status": {"const": "ok"}}, ["status"])
READY: JSON = closed({"status": {"const": "ok"}, "store": {"type": "string"}}, ["status", "store"])
NOT_READY: JSON = closed(
    {"status": {"const": "unavailable"}, "store": {"type": "string"}}, ["status", "store"]
)


def _tenant_operation(
    summary: str,
    tag: str,
    security: list[JSON],
    answers: JSON,
    *,
    description: str,
    body: JSON | None = None,
) -> JSON:
    """An endpoint of a tenant: below its issuer, or on any host with a tenant header."""
    return {
        **operation(
            summary,
            tag,
            security,
            answers,
            description=f"{BELOW_THE_ISSUER} {description}",
            parameters=TENANT_HEADERS,
            body=body,
        ),
        "servers": ISSUER_SERVERS,
    }


def _discovery(summary: str) -> JSON:
    return _tenant_operation(
        summary,
        DISCOVERY,
        ANYONE,
        DISCOVERY_ANSWERS,
        description="The RFC 8414 form /.well-known/oauth-authorization-server{issuer-path} "
        "answers the same.",
    )


OPERATIONS: dict[tuple[str, str], JSON] = {
    ("POST", "/token/revoke"): _tenant_operation(
        "Revoke a token (RFC 7009)",
        PUBLIC,
        CLIENT_AUTH,
        {"200": REVOCATION_200, **ERRORS},
        description="What falls with the token is the tenant's cascade policy "
        "(revocation.cascade). A pre_auth plugin may answer with another OAuth error.",
        body=request_body(ref("RevocationRequest"), FORM_TYPE),
    ),
    ("POST", "/token/introspect"): _tenant_operation(
        "Introspect a token (RFC 7662)",
        PUBLIC,
        CLIENT_AUTH,
        {
            "200": json_answer(ref("IntrospectionResponse"), "The token's state."),
            **ERRORS,
            "403": response("InsufficientScope"),
        },
        description="For confidential clients with the scope introspect. A pre_auth plugin "
        "may answer with another OAuth error.",
        body=request_body(ref("IntrospectionRequest"), FORM_TYPE),
    ),
    ("GET", "/.well-known/openid-configuration"): _discovery(
        "Authorization server metadata (OpenID Connect Discovery 1.0)"
    ),
    ("GET", "/.well-known/oauth-authorization-server"): _discovery(
        "Authorization server metadata (RFC 8414)"
    ),
    ("GET", "/healthz"): operation(
        "The process is alive", SERVICE, ANYONE, {"200": json_answer(STATUS_ONLY, "Alive.")}
    ),
    ("GET", "/readyz"): operation(
        "The store answers",
        SERVICE,
        ANYONE,
        {
            "200": json_answer(READY, "Ready."),
            "503": json_answer(
                NOT_READY, "The store does not answer.", {"Retry-After": RETRY_AFTER}
            ),
        },
    ),
    ("GET", "/openapi.json"): operation(
        "This document",
        SERVICE,
        [{}, {"adminKey": []}],
        {"200": json_answer({"type": "object"}, "An OpenAPI 3.1 document.")},
        description="Anonymous callers, and any key but the operator's, get the public "
        "endpoints only; the operator's admin key gets the admin API and /metrics too.",
    ),
}
