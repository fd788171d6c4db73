"""Only confidential clients may call the revocation and introspection endpoints.

IBM Security Verify Access's switch "only confidential clients may revoke/introspect":
``pre_auth`` answers ``401 invalid_client`` to a request that carries no client
credentials at all (``context.presented_auth`` is ``"none"``: a public client sending
only its ``client_id``, or ``None``: nothing), before the core authenticates anyone. A
request with credentials (Basic, ``client_secret_post``, an assertion, a Bearer token
for ``bearer_client_auth``) goes on to the core's client authentication as usual.

Config (all optional)::

    {"endpoints": ["revocation", "introspection"]}   # where it applies [both]

Every rejection is a ``plugin_rejected`` event (cause ``confidential_only@1.0``) in the
tenant's feed.
"""

from __future__ import annotations

from typing import Any

from app.plugins.context import HookContext
from app.plugins.decisions import Reject
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

ENDPOINTS = ("revocation", "introspection")
KEYS = frozenset({"endpoints"})
NO_CREDENTIALS = frozenset({"none", None})
DESCRIPTION = "only confidential clients may use this endpoint: authenticate the client"


def _endpoints(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"endpoints must be a non-empty list of {' and '.join(ENDPOINTS)}")
    for item in value:
        if item not in ENDPOINTS:
            raise ValueError(f"endpoints: {item!r} is not one of {', '.join(ENDPOINTS)}")
    return [e for e in ENDPOINTS if e in value]


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise ValueError("the config must be an object")
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(KEYS))})")
    return {"endpoints": _endpoints(config.get("endpoints", list(ENDPOINTS)))}


@hookimpl
def pre_auth(context: HookContext) -> Reject | None:
    if context.endpoint not in context.config.get("endpoints", ENDPOINTS):
        return None
    if context.presented_auth in NO_CREDENTIALS:
        return Reject(401, "invalid_client", DESCRIPTION)
    return None
