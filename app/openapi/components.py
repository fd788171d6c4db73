"""The shared parts of operations: security schemes, parameters, responses, and the
small builders the operation tables are written with."""

from __future__ import annotations

from app.openapi.schemas import (
    EVENT_CURSOR,
    EVENT_LIMIT,
    ID,
    PLUGIN_NAME,
    PLUGIN_VERSION,
    RECEIVER_ID,
    ref,
)
from app.openapi.settings_schema import TENANT_ID
from app.types import JSON

ADMIN_KEY = "adminKey"
CLIENT_BASIC = "clientSecretBasic"
ADMIN: list[JSON] = [{ADMIN_KEY: []}]
"""The operator's key, or (where the operation allows it) the tenant's own admin key.
Operations with only this security are left out of the anonymous callers' document."""
CLIENT_AUTH: list[JSON] = [{CLIENT_BASIC: []}, {}]
"""Basic, or the client authentication parameters of the form body (``{}``)."""
ANYONE: list[JSON] = [{}]
BEARER_TOKEN = "bearerAccessToken"

SECURITY_SCHEMES: JSON = {
    CLIENT_BASIC: {
        "type": "http",
        "scheme": "basic",
        "description": "client_secret_basic: the client id and secret, each "
        "form-urlencoded before base64 (RFC 6749 section 2.3.1). client_secret_post, "
        "client_secret_jwt, private_key_jwt (RFC 7523) and none use form parameters.",
    },
    BEARER_TOKEN: {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token of the tenant (RFC 6750), registered or a JWT "
        "(RFC 9068), with the scope the operation names.",
    },
    ADMIN_KEY: {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator's admin key (REVOCATION_ADMIN_KEY or "
        "<data-dir>/admin-key), or a tenant admin key (rtk_…) for its own tenant.",
    },
}


def _header(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "header", "schema": schema, "description": description}


def _path(name: str, schema: JSON, description: str) -> JSON:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _query(name: str, schema: JSON, description: str) -> JSON:
    return {"name": name, "in": "query", "schema": schema, "description": description}


PARAMETERS: JSON = {
    "TenantIdHeader": _header(
        "Tenant-ID",
        TENANT_ID,
        "Names the tenant on any host (contract section 3); needed where the URL is not "
        "below the tenant's issuer.",
    ),
    "IssuerHeader": _header(
        "Issuer",
        {"type": "string"},
        "Names the tenant by its issuer or an alias (contract section 3).",
    ),
    "tenant_id": _path("tenant_id", TENANT_ID, "The tenant."),
    "client_id": _path(
        "client_id", ID, "The client id, percent-encoded (an HTTPS URL's slashes too)."
    ),
    "grant_id": _path("grant_id", ID, "The grant id, percent-encoded."),
    "sub": _path("sub", ID, "The subject, percent-encoded."),
    "key_id": _path("key_id", {"type": "string"}, "An admin key's id."),
    "name": _path("name", PLUGIN_NAME, "The uploaded plugin's name."),
    "version": _path("version", PLUGIN_VERSION, "A kept version of the plugin."),
    "receiver_id": _path("receiver_id", RECEIVER_ID, "A receiver of Security Event Tokens."),
    "number": _path("number", {"type": "integer", "minimum": 1}, "A status list, from 1."),
    # An empty value is the default, as if the parameter were not there.
    "after": {
        **_query("after", EVENT_CURSOR, "The cursor: next of the previous page."),
        "allowEmptyValue": True,
    },
    "limit": {
        **_query("limit", {**EVENT_LIMIT, "default": 100}, "At most this many events."),
        "allowEmptyValue": True,
    },
}


def param(name: str) -> JSON:
    return {"$ref": f"#/components/parameters/{name}"}


def response(name: str) -> JSON:
    return {"$ref": f"#/components/responses/{name}"}


RETRY_AFTER: JSON = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def json_answer(schema: JSON, description: str, headers: JSON | None = None) -> JSON:
    out: JSON = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


OAUTH_ERROR = ref("OAuthError")
ADMIN_ERROR = ref("AdminError")
RESPONSES: JSON = {
    "InvalidRequest": json_answer(
        OAUTH_ERROR,
        "invalid_request: a bad form body (content type, UTF-8, a repeated parameter), a "
        "missing token, an unknown Tenant-ID or Issuer, two tenants named, a confidential "
        "client's attempt at another client's live token; unsupported_token_type: the hint "
        "all where the tenant does not allow it.",
    ),
    "InvalidClient": json_answer(
        OAUTH_ERROR,
        "invalid_client: client authentication failed or is missing; client_auth_id names "
        "the service's log line that says why.",
        {
            "WWW-Authenticate": {
                "description": "Basic realm=…, when Basic was tried.",
                "schema": {"type": "string"},
            }
        },
    ),
    "InsufficientScope": json_answer(
        OAUTH_ERROR, "insufficient_scope: the client lacks the scope."
    ),
    "NoTenant": json_answer(
        OAUTH_ERROR,
        "No tenant at this URL (and no tenant header), a disabled tenant, or an endpoint "
        "the tenant switched off.",
    ),
    "TooLarge": json_answer(OAUTH_ERROR, "The body is larger than the limit (16 KiB by default)."),
    "TooManyFailures": json_answer(
        OAUTH_ERROR,
        "invalid_client: too many failed client authentications from this address "
        "(contract section 7).",
        {"Retry-After": RETRY_AFTER},
    ),
    "ServerError": json_answer(OAUTH_ERROR, "server_error, with no detail."),
    "Unavailable": json_answer(
        OAUTH_ERROR,
        "temporarily_unavailable: the store (or, under fail_closed, a plugin) cannot "
        "answer; nothing was changed.",
        {"Retry-After": RETRY_AFTER},
    ),
    "AdminInvalid": json_answer(
        ADMIN_ERROR, "invalid_request; field is the dotted path of the wrong field."
    ),
    "AdminUnauthorized": json_answer(
        ADMIN_ERROR,
        "No admin key, or an unknown one.",
        {"WWW-Authenticate": {"description": "Bearer realm=…", "schema": {"type": "string"}}},
    ),
    "AdminForbidden": json_answer(
        ADMIN_ERROR, "The key may not do this (a tenant key beyond its own tenant)."
    ),
    "AdminNotFound": json_answer(ADMIN_ERROR, "No such tenant, or no such resource in it."),
    "AdminConflict": json_answer(
        ADMIN_ERROR, "A clash: an issuer or alias taken, a tenant being deleted, a name taken."
    ),
    "AdminTooLarge": json_answer(ADMIN_ERROR, "The body is larger than the limit."),
    "HeadersTooLarge": json_answer(
        OAUTH_ERROR,
        "invalid_request: the header block is over --max-header-bytes (32 KiB) or has "
        "more than --max-headers (100) fields; refused before any work, on every path.",
    ),
}


def operation(
    summary: str,
    tag: str,
    security: list[JSON],
    responses: JSON,
    *,
    description: str | None = None,
    parameters: list[JSON] | None = None,
    body: JSON | None = None,
) -> JSON:
    """An operation object; ``body`` is a request body object (``request_body``)."""
    out: JSON = {"summary": summary, "tags": [tag], "security": security}
    if description:
        out["description"] = description
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    out["responses"] = responses
    return out


def request_body(schema: JSON, media: str = "application/json") -> JSON:
    return {"required": True, "content": {media: {"schema": schema}}}
