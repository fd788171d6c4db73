"""``POST {issuer}/token/revoke``: OAuth 2.0 Token Revocation (RFC 7009).

The endpoint is the ordered list of steps in ``STEPS``; each reads and extends the
``Exchange``. Section 2.1: the client authenticates, the token is found whatever the
hint, a token of another client is refused; section 2.2: 200 for an unknown, expired
or already revoked token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.errors import InvalidClient, InvalidRequest, NotFound, UnsupportedTokenType
from app.oauth import cascade, token_finder
from app.oauth.abuse_limits import limit_failures
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.interception import (
    load_plugins,
    map_response,
    post_revoke,
    pre_revoke,
    with_pre_auth,
)
from app.oauth.jsonp import read_callback, render_jsonp
from app.oauth.steps import authenticate_client, parse_form, require_token
from app.responses import NO_STORE

REVOKE_ANY_TOKEN = "revoke_any_token"


async def ensure_enabled(x: Exchange) -> None:
    if not x.tenant.settings.revocation_enabled:
        raise NotFound("the revocation endpoint is disabled for this tenant")


async def ensure_client_may_revoke(x: Exchange) -> None:
    if not x.authenticated.confidential and not x.tenant.settings.public_clients_may_revoke:
        raise InvalidClient(
            "public clients may not revoke in this tenant", client_id=x.authenticated.client_id
        )


async def read_hint(x: Exchange) -> None:
    x.hint = token_finder.parse_hint(x.form.get("token_type_hint"))
    if x.hint == token_finder.ALL and not x.tenant.settings.allow_revoke_all:
        raise UnsupportedTokenType()


async def find_token(x: Exchange) -> None:
    """The registered credential, or the tenant's JWT (RFC 9068), which the owner check
    and the cascade then treat alike; a JWT's plan denies it instead of revoking a row."""
    if x.hint != token_finder.ALL:
        x.credential = await token_finder.find(x.services, x.tenant, x.token, x.now, x.log)


def may_revoke_others(x: Exchange) -> bool:
    return (
        x.tenant.settings.allow_revoke_other_clients
        and REVOKE_ANY_TOKEN in x.authenticated.client.scope
    )


async def check_owner(x: Exchange) -> None:
    c = x.credential
    if c is None or not c.is_live(x.now) or c.client_id == x.authenticated.client_id:
        return
    if may_revoke_others(x):
        return
    x.log(outcome="other_client")
    if not x.authenticated.confidential:
        # A public client must not learn that the token exists.
        x.credential = None
        return
    raise InvalidRequest("the token was not issued to this client")


async def plan_revocation(x: Exchange) -> None:
    if x.hint == token_finder.ALL:
        x.plan = cascade.revoke_all_plan(x.authenticated.client_id, x.now)
    elif x.credential is not None and x.credential.is_live(x.now):
        x.plan = cascade.plan_for(x.credential, x.tenant.settings.cascade, x.now)
    else:
        x.log(outcome="nothing_to_revoke")


async def apply_revocation(x: Exchange) -> None:
    if x.plan is None:
        return
    x.outcome = await x.services.store.apply_revocation(x.tenant.tenant_id, x.plan)
    x.log(
        outcome="revoked" if x.outcome.applied else "already_revoked",
        revoked=x.outcome.count,
        cause=x.plan.cause,
    )


async def respond(x: Exchange) -> None:
    x.response = Response(status_code=200, headers=NO_STORE)


STEPS: tuple[Step, ...] = (
    ensure_enabled,
    load_plugins,
    parse_form,
    read_callback,
    limit_failures(with_pre_auth(authenticate_client)),
    ensure_client_may_revoke,
    require_token,
    read_hint,
    find_token,
    check_owner,
    plan_revocation,
    pre_revoke,
    apply_revocation,
    post_revoke,
    respond,
)
FINALLY: tuple[Step, ...] = (map_response, render_jsonp)


async def revocation_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, "revocation"), STEPS, FINALLY)
