"""JSON Schemas of what the APIs read and answer (``components/schemas``).

Request bodies are built from the field lists and limits of the modules that validate
them (``app.admin.clients.FIELDS``, ``app.admin.credentials.MAX_BATCH``, …), so a field
added there without a schema here fails to build the document. Responses follow
``app.admin.representations`` and the endpoints; they allow no member the code does not
write, so the fuzzer's schema check notices a response that grew. Public answers allow
more: a tenant's ``response_mapping`` plugins may add members to them.
"""

from __future__ import annotations

from typing import Any

from app.admin import clients, credentials, events, grants
from app.admin.fields import MAX_ID, MAX_TEXT
from app.admin.plugins import SAMPLE_ARGS
from app.auth_methods import AuthMethod
from app.models import ClientType
from app.oauth.rfc7662 import TOKEN_TYPES
from app.openapi.settings_schema import JWK_SET, nullable, settings_schema
from app.plugins.uploads import NAME_RE
from app.settings import SIGNING_ALGS, TENANT_ID_RE
from app.types import JSON

STRING: JSON = {"type": "string"}
INTEGER: JSON = {"type": "integer"}
BOOLEAN: JSON = {"type": "boolean"}
SECONDS: JSON = {"type": "integer", "minimum": 0, "description": "Seconds since the epoch."}
EPOCH_FIELD: JSON = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}
"""``app.admin.fields.integer``: a time in seconds since the epoch."""
ID: JSON = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
TEXT: JSON = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
SCOPE: JSON = {
    "type": "string",
    "maxLength": MAX_TEXT,
    "pattern": r"^[\x20\x21\x23-\x5b\x5d-\x7e]*$",
    "description": "Space-separated scope tokens (RFC 6749 section 3.3).",
}


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: JSON, required: tuple[str, ...] | list[str] = ()) -> JSON:
    """An object with exactly these members (those in ``required`` always)."""
    out: JSON = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def fields_of(names: tuple[str, ...], schemas: dict[str, JSON]) -> JSON:
    """``schemas`` in the order of ``names``; a field with no schema raises ``KeyError``."""
    return {name: schemas[name] for name in names}


# --- errors ---------------------------------------------------------------------------

OAUTH_ERROR: JSON = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "examples": ["invalid_request", "invalid_client", "unsupported_token_type"],
        },
        "error_description": STRING,
        "client_auth_id": {
            "type": "string",
            "description": "After a failed client authentication: the id of the service's "
            "log line that says why.",
        },
    },
    "description": "An OAuth 2.0 error (RFC 6749 section 5.2); a tenant's "
    "response_mapping plugins may add members.",
}
ADMIN_ERROR: JSON = closed(
    {
        "error": {
            "type": "string",
            "examples": ["invalid_request", "unauthorized", "forbidden", "not_found", "conflict"],
        },
        "error_description": STRING,
        "field": {
            "type": "string",
            "description": "The dotted path of the wrong field, e.g. revocation.cascade.",
        },
    },
    ["error"],
)

# --- public endpoints -----------------------------------------------------------------

CLIENT_AUTH_PARAMETERS: JSON = {
    "client_id": {"type": "string", "description": "The client (none, client_secret_post)."},
    "client_secret": {"type": "string", "description": "client_secret_post."},
    "client_assertion": {
        "type": "string",
        "description": "client_secret_jwt and private_key_jwt: an RFC 7523 JWT.",
    },
    "client_assertion_type": {
        "type": "string",
        "examples": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
}
REVOCATION_REQUEST: JSON = {
    "type": "object",
    "required": ["token"],
    "properties": {
        "token": {"type": "string", "description": "The token to revoke."},
        "token_type_hint": {
            "type": "string",
            "description": "Orders the lookup only; an unknown value is ignored. all: every "
            "credential of the client, where the tenant allows it.",
            "examples": ["access_token", "refresh_token", "device_secret", "all"],
        },
        **CLIENT_AUTH_PARAMETERS,
        "callback": {
            "type": "string",
            "description": "JSONP, where the tenant enables it: the answer is then "
            "application/javascript, always 200.",
        },
    },
    "additionalProperties": STRING,
    "description": "Other parameters are ignored; none may be repeated.",
}
INTROSPECTION_REQUEST: JSON = {
    "type": "object",
    "required": ["token"],
    "properties": {"token": STRING, "token_type_hint": STRING, **CLIENT_AUTH_PARAMETERS},
    "additionalProperties": STRING,
    "description": "Other parameters are ignored; none may be repeated.",
}
INTROSPECTION_RESPONSE: JSON = {
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": BOOLEAN,
        "token_type": {"type": "string", "enum": sorted(set(TOKEN_TYPES.values()))},
        "client_id": STRING,
        "sub": STRING,
        "scope": STRING,
        "exp": INTEGER,
        "iat": INTEGER,
        "iss": STRING,
        "jti": STRING,
        "grant_id": STRING,
    },
    "description": "RFC 7662 section 2.2; only active tokens have more than active.",
}
METHOD_NAMES: JSON = {"type": "array", "items": {"enum": [m.value for m in AuthMethod]}}
ALG_NAMES: JSON = {"type": "array", "items": {"enum": list(SIGNING_ALGS)}}
DISCOVERY: JSON = closed(
    {
        "issuer": STRING,
        "revocation_endpoint": STRING,
        "revocation_endpoint_auth_methods_supported": METHOD_NAMES,
        "revocation_endpoint_auth_signing_alg_values_supported": ALG_NAMES,
        "introspection_endpoint": STRING,
        "introspection_endpoint_auth_methods_supported": METHOD_NAMES,
        "introspection_endpoint_auth_signing_alg_values_supported": ALG_NAMES,
    },
    ["issuer"],
)

# --- admin API ------------------------------------------------------------------------

CLIENT_INPUT: JSON = closed(
    {
        name: nullable(schema)
        for name, schema in fields_of(
            clients.FIELDS,
            {
                "client_id": {**ID, "description": "The client id of the path, repeated."},
                "type": {"type": "string", "enum": list(clients.CLIENT_TYPES)},
                "token_endpoint_auth_method": {"type": "string", "enum": list(clients.METHODS)},
                "client_secret": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": clients.MAX_SECRET,
                    "writeOnly": True,
                    "description": "Generated (and answered once) for a new secret-based "
                    "client without one; a replaced client keeps its secret.",
                },
                "jwks": {**JWK_SET, "description": "private_key_jwt: public keys only."},
                "jwks_uri": {**TEXT, "description": "private_key_jwt: an http(s) URL."},
                "scope": SCOPE,
                "enabled": BOOLEAN,
            },
        ).items()
    }
)
CLIENT: JSON = closed(
    {
        "client_id": STRING,
        "type": {"type": "string", "enum": [t.value for t in ClientType]},
        "token_endpoint_auth_method": {"type": "string", "enum": list(clients.METHODS)},
        "scope": STRING,
        "enabled": BOOLEAN,
        "has_secret": BOOLEAN,
        "jwks": {"type": "object"},
        "jwks_uri": STRING,
        "created_at": SECONDS,
        "updated_at": SECONDS,
        "client_secret": {
            "type": "string",
            "description": "Only right after the service generated it.",
        },
    },
    [
        "client_id",
        "type",
        "token_endpoint_auth_method",
        "scope",
        "enabled",
        "has_secret",
        "created_at",
        "updated_at",
    ],
)
OPTIONAL_ID: JSON = nullable(ID)
CREDENTIAL: JSON = closed(
    fields_of(
        credentials.FIELDS,
        {
            "token": {**TEXT, "writeOnly": True, "description": "Kept only as a keyed hash."},
            "type": {"type": "string", "enum": list(credentials.TOKEN_TYPES)},
            "client_id": {**ID, "description": "A registered client of the tenant."},
            "exp": EPOCH_FIELD,
            "sub": OPTIONAL_ID,
            "grant_id": OPTIONAL_ID,
            "device_session_id": OPTIONAL_ID,
            "scope": nullable({"type": "string", "maxLength": MAX_TEXT}),
            "iat": nullable(EPOCH_FIELD),
        },
    ),
    ["token", "type", "client_id", "exp"],
)
CREDENTIALS_INPUT: JSON = {
    "anyOf": [
        ref("Credential"),
        {"type": "array", "items": ref("Credential"), "maxItems": credentials.MAX_BATCH},
    ],
    "description": "One credential or a list; all are registered or none.",
}
GRANT_INPUT: JSON = closed(
    fields_of(
        grants.FIELDS,
        {
            "grant_id": nullable({**ID, "description": "The grant id of the path, repeated."}),
            "client_id": {**ID, "description": "A registered client of the tenant."},
            "sub": ID,
            "scope": nullable({"type": "string", "maxLength": MAX_TEXT}),
        },
    ),
    ["client_id", "sub"],
)
GRANT: JSON = closed(
    {
        "grant_id": STRING,
        "client_id": STRING,
        "sub": STRING,
        "scope": STRING,
        "updated_at": SECONDS,
    },
    ["grant_id", "client_id", "sub", "updated_at"],
)
TENANT: JSON = closed(
    {
        "tenant_id": {"type": "string", "pattern": TENANT_ID_RE.pattern},
        "settings": ref("EffectiveSettings"),
        "created_at": SECONDS,
        "updated_at": SECONDS,
    },
    ["tenant_id", "settings", "created_at", "updated_at"],
)
TENANT_LIST: JSON = closed(
    {
        "tenants": {
            "type": "array",
            "items": closed(
                {"tenant_id": STRING, "issuer": STRING, "enabled": BOOLEAN},
                ["tenant_id", "issuer", "enabled"],
            ),
        }
    },
    ["tenants"],
)
NEW_ADMIN_KEY: JSON = closed(
    {"key_id": STRING, "key": {"type": "string", "description": "Shown this once."}},
    ["key_id", "key"],
)
ADMIN_KEY_LIST: JSON = closed(
    {
        "admin_keys": {
            "type": "array",
            "items": closed({"key_id": STRING, "created_at": SECONDS}, ["key_id", "created_at"]),
        }
    },
    ["admin_keys"],
)
EVENT: JSON = closed(
    {
        "id": {"type": "string", "description": "The cursor to pass as after."},
        "time": SECONDS,
        "type": {"type": "string", "examples": ["revoked", "session_ended", "plugin_veto"]},
        "cause": {"type": "string", "description": "The policy or plugin."},
        "count": {"type": "integer", "minimum": 0, "description": "Credentials taken down."},
        "client_id": STRING,
        "sub": STRING,
        "grant_id": STRING,
        "token_type": STRING,
        "jti": STRING,
        "device_session_id": STRING,
    },
    ["id", "time", "type", "cause", "count"],
)
EVENT_PAGE: JSON = closed(
    {"events": {"type": "array", "items": ref("Event")}, "next": STRING}, ["events", "next"]
)
SUBJECT_CLIENTS: JSON = closed(
    {
        "clients": {
            "type": "array",
            "items": closed(
                {"client_id": STRING, "credentials": INTEGER, "grants": INTEGER},
                ["client_id", "credentials", "grants"],
            ),
        }
    },
    ["clients"],
)
PLUGIN: JSON = closed(
    {
        "name": STRING,
        "version": INTEGER,
        "sha256": STRING,
        "hooks": {"type": "array", "items": STRING},
        "current": BOOLEAN,
        "uploaded_by": STRING,
        "uploaded_at": SECONDS,
        "status": {"type": "string", "enum": ["enabled", "uploaded"]},
        "source": STRING,
    },
    ["name", "version", "sha256", "hooks", "current", "uploaded_by", "uploaded_at"],
)
PLUGIN_TEST: JSON = closed(
    {
        "hook": {"type": "string", "enum": list(SAMPLE_ARGS)},
        "context": {"type": "object", "description": "Merged over a sample context."},
        "plan": {"description": "pre_revoke's argument (a sample by default)."},
        "outcome": {"description": "post_revoke's argument (a sample by default)."},
        "response": {"description": "response_mapping's argument (a sample by default)."},
        "version": nullable(INTEGER),
    },
    ["hook"],
)
PLUGIN_TEST_RESULT: JSON = closed(
    {
        "name": STRING,
        "version": INTEGER,
        "hook": STRING,
        "decision": {"description": "What the hook returned."},
        "duration_ms": {"type": "number"},
        "output": {"type": "string", "description": "What the code printed."},
        "failed": closed({"kind": STRING, "detail": STRING}, ["kind", "detail"]),
    },
    ["name", "version", "hook"],
)


def list_of(name: str, key: str) -> JSON:
    return closed({key: {"type": "array", "items": ref(name)}}, [key])


SCHEMAS: dict[str, Any] = {
    "OAuthError": OAUTH_ERROR,
    "AdminError": ADMIN_ERROR,
    "RevocationRequest": REVOCATION_REQUEST,
    "IntrospectionRequest": INTROSPECTION_REQUEST,
    "IntrospectionResponse": INTROSPECTION_RESPONSE,
    "ServerMetadata": DISCOVERY,
    "TenantSettings": settings_schema("put"),
    "TenantSettingsPatch": settings_schema("patch"),
    "EffectiveSettings": settings_schema("effective"),
    "Tenant": TENANT,
    "TenantList": TENANT_LIST,
    "NewAdminKey": NEW_ADMIN_KEY,
    "AdminKeyList": ADMIN_KEY_LIST,
    "ClientInput": CLIENT_INPUT,
    "Client": CLIENT,
    "ClientList": list_of("Client", "clients"),
    "Credential": CREDENTIAL,
    "Credentials": CREDENTIALS_INPUT,
    "Registration": closed(
        {"registered": INTEGER, "duplicates": INTEGER}, ["registered", "duplicates"]
    ),
    "GrantInput": GRANT_INPUT,
    "Grant": GRANT,
    "SubjectClients": SUBJECT_CLIENTS,
    "Withdrawal": closed({"revoked": INTEGER}, ["revoked"]),
    "Event": EVENT,
    "EventPage": EVENT_PAGE,
    "Plugin": PLUGIN,
    "PluginList": list_of("Plugin", "plugins"),
    "PluginVersions": list_of("Plugin", "versions"),
    "PluginTest": PLUGIN_TEST,
    "PluginTestResult": PLUGIN_TEST_RESULT,
}
"""``components/schemas``."""

PLUGIN_NAME: JSON = {"type": "string", "pattern": NAME_RE.pattern}
PLUGIN_VERSION: JSON = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
EVENT_CURSOR: JSON = {
    "type": "string",
    "pattern": r"^[0-9]{0,19}$",
    "description": "The next of a previous page (an event id); none or 0: the beginning.",
}
EVENT_LIMIT: JSON = {"type": "integer", "minimum": 1, "maximum": events.MAX_LIMIT}
