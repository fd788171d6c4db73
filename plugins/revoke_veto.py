"""Veto revocations by some clients or of tokens with some scopes.

Like a Janssen (Gluu) revocation script returning ``false``: at the revocation endpoint,
``pre_revoke`` returns ``Veto(reason)`` when the calling client is one of ``clients``,
or when the found credential's scope (space-separated) shares a scope with ``scopes``.
Nothing is revoked, the caller still gets ``200`` (RFC 7009 gives it no way to tell),
and a ``plugin_veto`` event (cause ``revoke_veto@1.0``, the client, the credential's
``sub``, ``grant_id`` and type) goes to the tenant's feed. ``token_type_hint=all`` is
vetoed for a listed client (there is no credential whose scope could match). The admin
API's withdrawal of a client by its subject (``admin.withdraw``) is never vetoed: it
has no calling client, and the resource owner's decision stands.

Config (at least one list non-empty)::

    {"clients": ["legacy-app"], "scopes": ["offline_access"]}
"""

from __future__ import annotations

from typing import Any

from app.plugins.config import known_keys
from app.plugins.context import HookContext, PlanView
from app.plugins.decisions import Veto
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

KEYS = ("clients", "scopes")
MAX_ENTRIES = 1000
MAX_CLIENT_ID = 255
MAX_SCOPE = 255


def _strings(config: dict[str, Any], key: str, max_len: int, *, spaces: bool) -> list[str]:
    value = config.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_ENTRIES:
        raise ValueError(f"{key} must be a list of at most {MAX_ENTRIES} strings")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > max_len:
            raise ValueError(f"{key}: {item!r} is not a non-empty string of at most {max_len}")
        if not spaces and any(c.isspace() for c in item):
            raise ValueError(f"{key}: {item!r} is not one scope (it has a space)")
    return list(dict.fromkeys(value))


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    config = known_keys(config, KEYS)
    out = {
        "clients": _strings(config, "clients", MAX_CLIENT_ID, spaces=True),
        "scopes": _strings(config, "scopes", MAX_SCOPE, spaces=False),
    }
    if not out["clients"] and not out["scopes"]:
        raise ValueError("clients: give at least one client or scope to veto")
    return out


@hookimpl
def pre_revoke(context: HookContext, plan: PlanView) -> Veto | None:
    if context.endpoint != "revocation":
        return None
    client = context.client
    if client is not None and client.client_id in context.config.get("clients", ()):
        return Veto(f"client {client.client_id} may not revoke tokens")
    credential = context.credential
    if credential is not None and credential.scope:
        vetoed = set(context.config.get("scopes", ())) & set(credential.scope.split())
        if vetoed:
            return Veto(f"tokens with the scope {min(vetoed)} may not be revoked")
    return None
