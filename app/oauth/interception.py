"""The plugin hooks as steps of the public endpoints (contract section 6).

Each is a no-op for a tenant without enabled plugins (``x.interception is None``), so
the hooks cost nothing where they are not used.
"""

from __future__ import annotations

import json

from app.middleware.request_context import log_fields
from app.oauth import client_auth
from app.oauth.endpoint import Exchange, Step
from app.plugins.context import ResponseView
from app.plugins.interception import Interception


async def load_plugins(x: Exchange) -> None:
    chain = await x.services.plugins.chain(x.tenant)
    if chain:
        x.interception = Interception(
            x.services.plugins, x.tenant, chain, log_fields(x.request.scope)
        )


def with_pre_auth(authenticate: Step) -> Step:
    """``pre_auth`` around client authentication: a plugin may reject the request or
    authenticate the client itself, and the wrapped step then does not run."""

    async def pre_auth(x: Exchange) -> None:
        if x.interception is not None and x.interception.with_hook("pre_auth"):
            vouched = await x.interception.pre_auth(x.hook_context())
            if vouched is not None:
                bound, decision = vouched
                x.client = await client_auth.by_plugin(
                    x.services, x.tenant, decision.client_id, bound.name
                )
                x.log(client_id=x.client.client_id, auth_method=x.client.method)
                return
        await authenticate(x)

    return pre_auth


async def pre_revoke(x: Exchange) -> None:
    if x.interception is None or x.plan is None or not x.interception.with_hook("pre_revoke"):
        return
    x.plan = await x.interception.pre_revoke(x.hook_context(), x.plan, x.credential)
    if x.plan is None:
        x.log(outcome="vetoed")


async def post_revoke(x: Exchange) -> None:
    if x.interception is None or x.plan is None or x.outcome is None:
        return
    if not x.interception.with_hook("post_revoke"):
        return
    await x.interception.post_revoke(x.hook_context(), x.plan, x.outcome)


async def map_response(x: Exchange) -> None:
    """``response_mapping`` on whatever the endpoint answers, errors included."""
    response = x.response
    if x.interception is None or response is None:
        return
    if not x.interception.with_hook("response_mapping"):
        return
    body = json.loads(bytes(response.body)) if response.body else None
    view = ResponseView(response.status_code, body if isinstance(body, dict) else None)
    added = await x.interception.response_mapping(x.hook_context(), view)
    replaced: dict[bytes, bytes] = {}
    # A 204 (Global Token Revocation's success) has no body to add attributes to.
    has_body = response.status_code != 204
    if added.attributes and has_body and (view.body is not None or not response.body):
        response.body = _encode({**added.attributes, **(view.body or {})}).encode()
        replaced[b"content-type"] = b"application/json"
        replaced[b"content-length"] = str(len(response.body)).encode()
    for name, value in added.headers.items():
        replaced[name.lower().encode("latin-1")] = value.encode("latin-1")
    if replaced:
        # One pass over the raw headers (MutableHeaders rebuilds them on every set).
        kept = [(k, v) for k, v in response.raw_headers if k not in replaced]
        response.raw_headers = [*kept, *replaced.items()]


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
