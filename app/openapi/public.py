"""The public endpoints (contract section 4) and the service's own routes (section 7),
keyed by ``(METHOD, path)`` as ``app.routes`` spells them."""

from __future__ import annotations

from app.oauth.form import FORM_TYPE
from app.openapi.components import (
    ANYONE,
    BEARER_TOKEN,
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
PUBLIC_JWK: JSON = closed(
    {
        "kty": {"const": "EC"},
        "crv": {"const": "P-256"},
        "x": {"type": "string"},
        "y": {"type": "string"},
        "kid": {"type": "string", "description": "The RFC 7638 thumbprint."},
        "alg": {"const": "ES256"},
        "use": {"const": "sig"},
    },
    ["kty", "crv", "x", "y", "kid", "alg"],
)
PUBLISHED_KEYS: JSON = closed({"keys": {"type": "array", "items": PUBLIC_JWK}}, ["keys"])
SET_POLL_REQUEST: JSON = {
    "type": "object",
    "description": "RFC 8936 section 2.4; client authentication members (client_id with "
    "client_secret or client_assertion and client_assertion_type) may be in it too.",
    "properties": {
        "ack": {
            "type": "array",
            "items": {"type": "string"},
            "description": "jtis of SETs received: acknowledging one acknowledges every "
            "earlier SET of the receiver too (cumulative, in order).",
        },
        "setErrs": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"err": {"type": "string"}, "description": {"type": "string"}},
                "required": ["err"],
            },
            "description": "jti → error: the SET is logged as set_error and acknowledged.",
        },
        "maxEvents": {"type": "integer", "minimum": 0, "description": "At most 100 are sent."},
        "returnImmediately": {
            "type": "boolean",
            "default": False,
            "description": "false: held until a SET is available, at most 30 s.",
        },
    },
}
SET_POLL_RESPONSE: JSON = closed(
    {
        "sets": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "jti → the signed SET (RFC 8417, typ secevent+jwt).",
        },
        "moreAvailable": {"type": "boolean"},
    },
    ["sets", "moreAvailable"],
)
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
    ("POST", "/global-token-revocation"): _tenant_operation(
        "Revoke every token and session of a subject (Global Token Revocation)",
        PUBLIC,
        [*CLIENT_AUTH, {BEARER_TOKEN: []}],
        {
            "204": {
                "description": "Revoked: every credential of the subject at every client, "
                "its grant records, its device sessions (ended) and its JWT access tokens "
                "(a not-before mark). Also for a subject the service knows nothing of."
            },
            **ERRORS,
            "400": json_answer(
                ref("OAuthError"),
                "invalid_request: not a JSON object, sub_id missing or malformed, a format "
                "the tenant does not accept, an iss that is not the tenant's issuer.",
            ),
            "401": json_answer(
                ref("OAuthError"),
                "invalid_client (client authentication failed or a public client), or "
                "invalid_token (the bearer token), with WWW-Authenticate where Basic or "
                "Bearer was tried.",
            ),
            "403": response("InsufficientScope"),
            "404": response("NoTenant"),
            "422": json_answer(
                ref("OAuthError"), "revocation_refused: a pre_revoke plugin vetoed it."
            ),
        },
        description="For a confidential client with the scope global_token_revocation "
        "(client authentication members in the JSON body, or Basic), or a bearer access "
        "token of the tenant with that scope. Enabled per tenant (global_revocation.enabled).",
        body=request_body(ref("GlobalRevocationRequest")),
    ),
    ("POST", "/revocation/set-poll/{receiver_id}"): _tenant_operation(
        "Poll for Security Event Tokens (RFC 8936)",
        PUBLIC,
        CLIENT_AUTH,
        {
            "200": json_answer(SET_POLL_RESPONSE, "The unacknowledged SETs, oldest first."),
            **ERRORS,
            "403": json_answer(
                ref("OAuthError"),
                "insufficient_scope (no revocation_events), or forbidden: the receiver "
                "polls as another client.",
            ),
            "404": json_answer(
                ref("OAuthError"), "No tenant, or no receiver of that id with delivery poll."
            ),
        },
        description="For a receiver registered with delivery poll, called by its client_id "
        "(a confidential client with the scope revocation_events). The cursor moves to the "
        "latest SET acknowledged; SETs after it are sent again until acknowledged.",
        body=request_body(SET_POLL_REQUEST),
    ),
    ("GET", "/.well-known/openid-configuration"): _discovery(
        "Authorization server metadata (OpenID Connect Discovery 1.0)"
    ),
    ("GET", "/.well-known/oauth-authorization-server"): _discovery(
        "Authorization server metadata (RFC 8414)"
    ),
    ("GET", "/jwks"): _tenant_operation(
        "The tenant's public signing keys (RFC 7517 JWK Set)",
        DISCOVERY,
        ANYONE,
        {
            "200": {
                "description": "The current key and the rotated-out keys still published "
                "(a rotation keeps the previous key for its overlap, 7 days by default); "
                "empty before the tenant first signs. Cache-Control: max-age=60: a "
                "receiver that meets an unknown kid fetches again.",
                "content": {"application/jwk-set+json": {"schema": PUBLISHED_KEYS}},
            },
            "400": response("InvalidRequest"),
            "404": response("NoTenant"),
            "503": response("Unavailable"),
        },
        description="Security Event Tokens and the status list are signed with these keys.",
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
