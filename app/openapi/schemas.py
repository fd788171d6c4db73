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

from app.admin import clients, credentials, events, grants, receivers
from app.admin.fields import MAX_ID, MAX_TEXT
from app.admin.plugins import SAMPLE_ARGS
from app.auth_methods import AuthMethod
from app.models import ClientType
from app.oauth.rfc7662 import TOKEN_TYPES
from app.openapi.settings_schema import JWK_SET, nullable, settings_schema
from app.plugins.uploads import NAME_RE
from app.settings import SIGNING_ALGS, SUBJECT_FORMATS, TENANT_ID_RE
from app.types import JSON

STRING: JSON = {"type": "string"}
INTEGER: JSON = {"type": "integer"}
BOOLEAN: JSON = {"type": "boolean"}
SECONDS: JSON = {"type": "integer", "minimum": 0, "description": "Seconds since the epoch."}
EPOCH_FIELD: JSON = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}
"""``app.admin.fields.integer``: a time in seconds since the epoch."""
ID: JSON = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
TEXT: JSON = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
EVENT_CURSOR_VALUE: JSON = {"type": "string", "pattern": r"^[0-9]{1,19}$"}
"""An event id, as the events feed writes it."""
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
GLOBAL_REVOCATION_REQUEST: JSON = {
    "type": "object",
    "required": ["sub_id"],
    "properties": {
        "sub_id": {
            "type": "object",
            "required": ["format"],
            "properties": {"format": {"enum": list(SUBJECT_FORMATS)}},
            "additionalProperties": STRING,
            "description": "An RFC 9493 Subject Identifier of a format the tenant accepts "
            "(global_revocation.subject_formats): iss_sub (iss: the tenant's issuer or an "
            "alias, sub), opaque (id), email (email), phone_number (phone_number), account "
            "(uri); each names the tenant's sub.",
            "examples": [{"format": "iss_sub", "iss": "https://auth.example.com", "sub": "u-1"}],
        },
        **CLIENT_AUTH_PARAMETERS,
    },
    "description": "Global Token Revocation (draft-parecki-oauth-global-token-revocation). "
    "Client authentication members are strings, as in a form body; other members are "
    "ignored; none may be repeated.",
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
        "jwks_uri": STRING,
        "revocation_endpoint": STRING,
        "revocation_endpoint_auth_methods_supported": METHOD_NAMES,
        "revocation_endpoint_auth_signing_alg_values_supported": ALG_NAMES,
        "introspection_endpoint": STRING,
        "introspection_endpoint_auth_methods_supported": METHOD_NAMES,
        "introspection_endpoint_auth_signing_alg_values_supported": ALG_NAMES,
        "revocation_events_endpoint": STRING,
        "revocation_events_endpoint_auth_methods_supported": METHOD_NAMES,
        "global_token_revocation_endpoint": STRING,
        "global_token_revocation_endpoint_auth_methods_supported": {
            "type": "array",
            "items": {"enum": [*(m.value for m in AuthMethod), "Bearer"]},
        },
        "status_list_aggregation_endpoint": STRING,
    },
    ["issuer"],
)

# --- admin API ------------------------------------------------------------------------

STATUS_REFERENCE: JSON = closed(
    {
        "status_list": closed(
            {"idx": {"type": "integer", "minimum": 0}, "uri": STRING}, ["idx", "uri"]
        )
    },
    ["status_list"],
)
REGISTRATION: JSON = closed(
    {
        "registered": INTEGER,
        "duplicates": INTEGER,
        "status": {
            "type": "array",
            "items": {"oneOf": [STATUS_REFERENCE, {"type": "null"}]},
            "description": "Where the tenant sets status_list.enabled: for each given "
            "credential, in order, the status claim (Token Status List draft) to put in "
            "the token; a duplicate's is the one it was stored with, null when it was "
            "registered before the tenant had a status list.",
        },
    },
    ["registered", "duplicates"],
)

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


SIGNING_KEY: JSON = closed(
    {
        "kid": STRING,
        "alg": {"const": "ES256"},
        "public_jwk": {"type": "object", "description": "The public JWK; never private."},
        "created_at": SECONDS,
        "retire_at": {
            **nullable(SECONDS),
            "description": "null: the current key. Else published until then.",
        },
        "current": BOOLEAN,
    },
    ["kid", "alg", "public_jwk", "created_at", "retire_at", "current"],
)
ROTATION: JSON = closed(
    {"overlap_s": {"type": "integer", "minimum": 0, "maximum": 365 * 86_400, "default": 604_800}}
)


RECEIVER_INPUT: JSON = closed(
    {
        name: nullable(schema)
        for name, schema in fields_of(
            receivers.FIELDS,
            {
                "receiver_id": {
                    "type": "string",
                    "pattern": receivers.RECEIVER_ID_RE.pattern,
                    "description": "The receiver id of the path, repeated.",
                },
                "delivery": {"type": "string", "enum": list(receivers.DELIVERIES)},
                "url": {
                    "type": "string",
                    "maxLength": receivers.MAX_URL,
                    "description": "push, required: where SETs are POSTed (RFC 8935). https, "
                    "a host of key_fetch.allowed_hosts, not a loopback or private address "
                    "(unless the operator allows private addresses, which allows http too).",
                },
                "authorization": {
                    "type": "string",
                    "maxLength": receivers.MAX_AUTHORIZATION,
                    "writeOnly": True,
                    "description": "push: the Authorization header value sent with each SET, "
                    "kept sealed and never shown. Omitted on a replace: kept while the url "
                    'stays the same; "" removes it.',
                },
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": receivers.MAX_EVENT_TYPES,
                    "items": {"type": "string"},
                    "description": "Feed types by short name (revoked, session_ended, …) or "
                    "event type URI; default revoked and session_ended.",
                },
                "audience": {
                    **TEXT,
                    "maxLength": receivers.MAX_URL,
                    "description": "The SETs' aud; default the url (push) or the client id.",
                },
                "client_id": {**ID, "description": "poll, required: a client of the tenant."},
                "start_after": {
                    **EVENT_CURSOR_VALUE,
                    "description": "On creation: the event id after which delivery starts "
                    "(default: the latest event, so events from now on). Ignored on a "
                    "replace, which keeps the receiver's place.",
                },
            },
        ).items()
    }
)
RECEIVER_STATE: JSON = closed(
    {
        "status": {"type": "string", "enum": ["active", "paused"]},
        "cursor": {"type": "string", "description": "The last event delivered (an event id)."},
        "paused_reason": nullable(STRING),
        "failing_since": nullable(SECONDS),
        "attempts": {"type": "integer", "minimum": 0, "description": "Failed, in a row."},
        "next_attempt_at": SECONDS,
        "last_error": nullable(STRING),
        "delivered": {"type": "integer", "minimum": 0},
        "lag": {
            "type": "integer",
            "minimum": 0,
            "description": "Read alone: events of its types after the cursor (counted among "
            f"the next {receivers.LAG_SCAN}).",
        },
    },
    [
        "status",
        "cursor",
        "paused_reason",
        "failing_since",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered",
    ],
)
DELIVERY_ATTEMPT: JSON = closed(
    {
        "time": SECONDS,
        "event_id": STRING,
        "outcome": {
            "type": "string",
            "examples": ["delivered", "failed", "acknowledged", "set_error", "paused"],
        },
        "status": {"type": "integer", "description": "The receiver's HTTP status."},
        "detail": STRING,
        "duration_ms": {"type": "integer", "minimum": 0},
    },
    ["time", "event_id", "outcome"],
)
RECEIVER: JSON = closed(
    {
        "receiver_id": STRING,
        "delivery": {"type": "string", "enum": list(receivers.DELIVERIES)},
        "events": {"type": "array", "items": STRING, "description": "Event type URIs."},
        "url": STRING,
        "audience": STRING,
        "client_id": STRING,
        "authorization_set": BOOLEAN,
        "created_at": SECONDS,
        "updated_at": SECONDS,
        "state": RECEIVER_STATE,
        "log": {
            "type": "array",
            "items": DELIVERY_ATTEMPT,
            "maxItems": receivers.LOG_SHOWN,
            "description": "Read alone: the latest delivery attempts, newest first.",
        },
    },
    ["receiver_id", "delivery", "events", "authorization_set", "created_at", "updated_at"],
)


def list_of(name: str, key: str) -> JSON:
    return closed({key: {"type": "array", "items": ref(name)}}, [key])


SCHEMAS: dict[str, Any] = {
    "OAuthError": OAUTH_ERROR,
    "AdminError": ADMIN_ERROR,
    "RevocationRequest": REVOCATION_REQUEST,
    "IntrospectionRequest": INTROSPECTION_REQUEST,
    "GlobalRevocationRequest": GLOBAL_REVOCATION_REQUEST,
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
    "Registration": REGISTRATION,
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
    "SigningKey": SIGNING_KEY,
    "SigningKeyList": list_of("SigningKey", "keys"),
    "Rotation": ROTATION,
    "ReceiverInput": RECEIVER_INPUT,
    "Receiver": RECEIVER,
    "ReceiverList": list_of("Receiver", "receivers"),
}
"""``components/schemas``."""

PLUGIN_NAME: JSON = {"type": "string", "pattern": NAME_RE.pattern}
PLUGIN_VERSION: JSON = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
RECEIVER_ID: JSON = {"type": "string", "pattern": receivers.RECEIVER_ID_RE.pattern}
EVENT_CURSOR: JSON = {
    "type": "string",
    "pattern": r"^[0-9]{0,19}$",
    "description": "The next of a previous page (an event id); none or 0: the beginning.",
}
EVENT_LIMIT: JSON = {"type": "integer", "minimum": 1, "maximum": events.MAX_LIMIT}
