"""The admin API (contract section 5) and ``/metrics``, keyed by ``(METHOD, path)`` as
``app.routes`` and ``app.admin.routes`` spell them. Path parameters come from the route's
path; which operations a tenant's own admin key may call, from the admin route table."""

from __future__ import annotations

from app.openapi.components import ADMIN, json_answer, operation, param, request_body, response
from app.openapi.schemas import ref
from app.plugins.uploads import MAX_SOURCE_BYTES
from app.types import JSON

ADMIN_TAG = "admin"
API = "/admin/v1"
TENANT = f"{API}/tenants/{{tenant_id}}"
PLUGIN = f"{TENANT}/plugins/{{name}}"

ERROR_NAMES = {
    400: "AdminInvalid",
    401: "AdminUnauthorized",
    403: "AdminForbidden",
    404: "AdminNotFound",
    409: "AdminConflict",
    413: "AdminTooLarge",
    503: "Unavailable",
}
ALWAYS = (400, 401, 403, 404, 503)
"""A path parameter that is not UTF-8, the key, the tenant, the store."""


def _admin(
    summary: str,
    answers: JSON,
    *,
    description: str | None = None,
    body: JSON | None = None,
    errors: tuple[int, ...] = (),
    query: tuple[str, ...] = (),
) -> JSON:
    statuses = sorted({*ALWAYS, *errors})
    failures = {str(s): response(ERROR_NAMES[s]) for s in statuses}
    return operation(
        summary,
        ADMIN_TAG,
        ADMIN,
        {**answers, **failures},
        description=description,
        parameters=[param(q) for q in query],
        body=body,
    )


def _ok(schema_name: str, description: str = "Done.", status: int = 200) -> JSON:
    return {str(status): json_answer(ref(schema_name), description)}


def _put(schema_name: str) -> JSON:
    return {**_ok(schema_name, "Replaced."), **_ok(schema_name, "Created.", 201)}


def _json_body(schema_name: str) -> JSON:
    return request_body(ref(schema_name))


NO_CONTENT: JSON = {"204": {"description": "Done."}}
LIMITS = (413,)

OPERATIONS: dict[tuple[str, str], JSON] = {
    ("GET", f"{API}/tenants"): _admin("List tenants", _ok("TenantList")),
    ("PUT", TENANT): _admin(
        "Create or replace a tenant",
        _put("Tenant"),
        description="Replaces the settings (contract section 8); keeps the tenant's "
        "clients, credentials and admin keys. 409: the issuer or an alias is another "
        "tenant's, or the tenant id is still being deleted.",
        body=_json_body("TenantSettings"),
        errors=(409, 413),
    ),
    ("GET", TENANT): _admin("Read a tenant (effective settings)", _ok("Tenant")),
    ("PATCH", TENANT): _admin(
        "Change part of a tenant's settings (RFC 7396 merge patch)",
        _ok("Tenant"),
        description="Objects merge, arrays are replaced, null resets to the default. A "
        "tenant key may not change issuer, issuer_aliases or enabled.",
        body={
            "required": True,
            "content": {
                media: {"schema": ref("TenantSettingsPatch")}
                for media in ("application/json", "application/merge-patch+json")
            },
        },
        errors=(409, 413),
    ),
    ("DELETE", TENANT): _admin(
        "Delete a tenant with all its data",
        NO_CONTENT,
        description="The 204 comes when everything is gone.",
    ),
    ("POST", f"{TENANT}/admin-keys"): _admin(
        "Create a tenant admin key", _ok("NewAdminKey", "The key, shown this once.", 201)
    ),
    ("GET", f"{TENANT}/admin-keys"): _admin("List a tenant's admin keys", _ok("AdminKeyList")),
    ("DELETE", f"{TENANT}/admin-keys/{{key_id}}"): _admin("Revoke an admin key", NO_CONTENT),
    ("GET", f"{TENANT}/clients"): _admin("List clients", _ok("ClientList")),
    ("PUT", f"{TENANT}/clients/{{client_id}}"): _admin(
        "Register or replace a client",
        _put("Client"),
        description="Without client_secret a new secret-based client gets a generated "
        "one, answered this once; a replaced client keeps its secret.",
        body=_json_body("ClientInput"),
        errors=LIMITS,
    ),
    ("GET", f"{TENANT}/clients/{{client_id}}"): _admin(
        "Read a client (never its secret)", _ok("Client")
    ),
    ("DELETE", f"{TENANT}/clients/{{client_id}}"): _admin("Delete a client", NO_CONTENT),
    ("POST", f"{TENANT}/credentials"): _admin(
        "Register issued credentials",
        _ok("Registration"),
        description="One object or a list; all are registered or none. The same token "
        "again with the same fields is a duplicate; with other fields, 409.",
        body=_json_body("Credentials"),
        errors=(409, 413),
    ),
    ("PUT", f"{TENANT}/grants/{{grant_id}}"): _admin(
        "Create or replace a grant record",
        _put("Grant"),
        body=_json_body("GrantInput"),
        errors=LIMITS,
    ),
    ("GET", f"{TENANT}/grants/{{grant_id}}"): _admin("Read a grant record", _ok("Grant")),
    ("GET", f"{TENANT}/subjects/{{sub}}/clients"): _admin(
        "The clients a subject has authorized", _ok("SubjectClients")
    ),
    ("DELETE", f"{TENANT}/subjects/{{sub}}/clients/{{client_id}}"): _admin(
        "The subject withdraws a client",
        _ok("Withdrawal", "How many credentials fell."),
        description="Every credential and grant record of that client for that subject is "
        "revoked, and its JWT access tokens with a not-before mark.",
    ),
    ("GET", f"{TENANT}/events"): _admin(
        "The tenant's events, in order", _ok("EventPage"), query=("after", "limit")
    ),
    ("GET", f"{TENANT}/plugins"): _admin("List uploaded plugins", _ok("PluginList")),
    ("PUT", PLUGIN): _admin(
        "Upload a plugin (a new version, made current)",
        _ok("Plugin", "Stored.", 201),
        description="409: the name of an operator plugin.",
        body=request_body(
            {
                "type": "string",
                "description": f"Python source, UTF-8, at most {MAX_SOURCE_BYTES} bytes, "
                "defining at least one hook.",
            },
            "text/x-python",
        ),
        errors=(409, 413),
    ),
    ("GET", PLUGIN): _admin("Read a plugin's current version", _ok("Plugin")),
    ("DELETE", PLUGIN): _admin(
        "Remove a plugin",
        NO_CONTENT,
        description="409: it is enabled in plugins.enabled.",
        errors=(409,),
    ),
    ("GET", f"{PLUGIN}/versions"): _admin("List a plugin's versions", _ok("PluginVersions")),
    ("GET", f"{PLUGIN}/versions/{{version}}"): _admin("Read one version", _ok("Plugin")),
    ("POST", f"{PLUGIN}/versions/{{version}}/activate"): _admin(
        "Make a kept version current again", _ok("Plugin")
    ),
    ("POST", f"{PLUGIN}/test"): _admin(
        "Dry-run one hook on a sample context",
        _ok("PluginTestResult", "The decision, the duration and what the code printed."),
        description="Nothing is revoked and no event is recorded.",
        body=_json_body("PluginTest"),
        errors=LIMITS,
    ),
    ("GET", f"{TENANT}/signing-keys"): _admin(
        "The tenant's own signing keys (public parts only)",
        _ok("SigningKeyList"),
        description="Every kept key, the current one first. Security Event Tokens and "
        "the status list are signed with the current key; {issuer}/jwks publishes it and "
        "the rotated-out keys until their retire_at.",
    ),
    ("POST", f"{TENANT}/signing-keys/rotate"): _admin(
        "Rotate the tenant's signing key",
        _ok("SigningKeyList", "The keys after the rotation."),
        description="A new key becomes current at once; the previous one stays "
        "published for overlap_s seconds (default 604800, 7 days). The body is optional.",
        body={"required": False, "content": {"application/json": {"schema": ref("Rotation")}}},
        errors=LIMITS,
    ),
    ("GET", f"{TENANT}/receivers"): _admin("List receivers (without logs)", _ok("ReceiverList")),
    ("PUT", f"{TENANT}/receivers/{{receiver_id}}"): _admin(
        "Register or replace a receiver of Security Event Tokens",
        _put("Receiver"),
        description="Push (RFC 8935) to a URL, or poll (RFC 8936) by a client of the "
        "tenant. The URL obeys the tenant's key_fetch.allowed_hosts and, unless the operator "
        "allows private addresses, must be https and not a loopback or private address. A "
        "new receiver starts after start_after (default: the latest event); replacing one "
        "keeps its place, resumes it when paused, and keeps its authorization while the URL "
        "stays the same. 409: the tenant has 100 receivers.",
        body=_json_body("ReceiverInput"),
        errors=(409, 413),
    ),
    ("GET", f"{TENANT}/receivers/{{receiver_id}}"): _admin(
        "Read a receiver with its delivery state",
        _ok("Receiver"),
        description="With its lag and its latest 50 delivery attempts, newest first; "
        "never its authorization (authorization_set says whether one is kept).",
    ),
    ("DELETE", f"{TENANT}/receivers/{{receiver_id}}"): _admin(
        "Delete a receiver with its delivery state and log", NO_CONTENT
    ),
    ("GET", "/metrics"): operation(
        "Prometheus metrics",
        "service",
        ADMIN,
        {
            "200": {
                "description": "Prometheus text format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": response("AdminUnauthorized"),
            "403": response("AdminForbidden"),
            "503": response("Unavailable"),
        },
    ),
}
