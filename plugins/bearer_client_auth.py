"""A client authenticates with an access token issued to it (``Authorization: Bearer``).

As IBM Security Verify Access allows at its revocation and introspection endpoints: a
request with ``Authorization: Bearer <access token>`` is the client the token was issued
to. ``pre_auth`` looks the token up in the tenant (``context.trusted.find_credential``);
a live registered access token (type ``access_token``, not revoked, ``exp`` in the
future, and carrying ``required_scope`` when configured) authenticates its client
(``Authenticate(client_id)``: the core's client authentication is skipped; the client
must still be registered and enabled, and the endpoint's own checks — confidential
client and scope ``introspect`` at introspection — still apply). A Bearer token that is
unknown, revoked, expired, not an access token or lacks the scope is answered
``401 invalid_client`` (a ``plugin_rejected`` event). A ``client_id`` form parameter
naming another client, or a client assertion beside the Bearer token, is
``400 invalid_request`` (one method per request). Without a Bearer header the plugin
does nothing and the core authenticates as usual (the core itself refuses a Bearer
``Authorization`` header: this plugin is what makes it work).

Only registered (opaque) access tokens are known to the lookup; a JWT access token that
was never registered is unknown here.

Config (all optional)::

    {"required_scope": "revoke"}   # the access token's scope must contain this one
"""

from __future__ import annotations

from typing import Any

import structlog

from app.plugins.config import known_keys
from app.plugins.context import CredentialInfo, HookContext
from app.plugins.decisions import Authenticate, Reject
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

KEYS = frozenset({"required_scope"})
ACCESS_TOKEN = "access_token"
SCOPE_TOKEN_MAX = 255
REFUSED = (
    "the bearer token does not authenticate a client: unknown, revoked, expired, not an "
    "access token, or without the required scope"
)

log = structlog.get_logger("revocation.plugins.bearer_client_auth")


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    config = known_keys(config, KEYS)
    out: dict[str, Any] = {}
    if "required_scope" in config:
        scope = config["required_scope"]
        if (
            not isinstance(scope, str)
            or not scope
            or len(scope) > SCOPE_TOKEN_MAX
            or any(c.isspace() for c in scope)
        ):
            raise ValueError("required_scope must be one scope: a non-empty string, no spaces")
        out["required_scope"] = scope
    return out


def _bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization header (scheme case-insensitive)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _refusal(credential: CredentialInfo | None, now: int, required: str | None) -> str | None:
    """Why this credential does not authenticate a client, or None when it does."""
    if credential is None:
        return "unknown bearer token"
    if credential.type != ACCESS_TOKEN:
        return "the bearer token is not an access token"
    if credential.revoked:
        return "the bearer token is revoked"
    if credential.exp <= now:
        return "the bearer token has expired"
    if required is not None and required not in (credential.scope or "").split():
        return f"the bearer token lacks the scope {required}"
    return None


@hookimpl
async def pre_auth(context: HookContext) -> Authenticate | Reject | None:
    trusted = context.trusted
    if trusted is None:
        return None
    token = _bearer_token(trusted.authorization)
    if token is None:
        return None
    if "client_assertion_type" in context.params:
        return Reject(400, "invalid_request", "more than one client authentication method")
    if not token:
        return Reject(401, "invalid_client", "empty bearer token")
    credential = await trusted.find_credential(token)
    refusal = _refusal(credential, context.now, context.config.get("required_scope"))
    if refusal is not None or credential is None:
        # The exact cause is for the operator's log only, as for the core's failures.
        log.warning("bearer_client_auth_refused", tenant_id=context.tenant_id, cause=refusal)
        return Reject(401, "invalid_client", REFUSED)
    named = context.params.get("client_id")
    if named is not None and named != credential.client_id:
        return Reject(400, "invalid_request", "client_id does not match the bearer token")
    return Authenticate(credential.client_id)
