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

from app.plugins.config import ENDPOINTS, endpoints, known_keys
from app.plugins.context import HookContext
from app.plugins.decisions import Reject
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

KEYS = frozenset({"endpoints"})
NO_CREDENTIALS = frozenset({"none", None})
DESCRIPTION = "only confidential clients may use this endpoint: authenticate the client"


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    config = known_keys(config, KEYS)
    return {"endpoints": endpoints(config.get("endpoints", list(ENDPOINTS)))}


@hookimpl
def pre_auth(context: HookContext) -> Reject | None:
    if context.endpoint not in context.config.get("endpoints", ENDPOINTS):
        return None
    if context.presented_auth in NO_CREDENTIALS:
        return Reject(401, "invalid_client", DESCRIPTION)
    return None
