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
from app.oauth import cascade, client_auth, token_finder
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.form import read_form
from app.responses import NO_STORE

REVOKE_ANY_TOKEN = "revoke_any_token"


async def ensure_enabled(x: Exchange) -> None:
    if not x.tenant.settings.revocation_enabled:
        raise NotFound("the revocation endpoint is disabled for this tenant")


async def parse_form(x: Exchange) -> None:
    x.form = await read_form(x.request, x.services.config.max_body_bytes)


async def authenticate_client(x: Exchange) -> None:
    x.client = await client_auth.authenticate(x.services, x.tenant, x.request, x.form)
    x.log(client_id=x.client.client_id, auth_method=x.client.method)


async def ensure_client_may_revoke(x: Exchange) -> None:
    if not x.authenticated.confidential and not x.tenant.settings.public_clients_may_revoke:
        raise InvalidClient(
            "public clients may not revoke in this tenant", client_id=x.authenticated.client_id
        )


async def require_token(x: Exchange) -> None:
    x.token = x.form.get("token", "")
    if not x.token:
        raise InvalidRequest("the token parameter is missing")


async def read_hint(x: Exchange) -> None:
    x.hint = token_finder.parse_hint(x.form.get("token_type_hint"))
    if x.hint == token_finder.ALL and not x.tenant.settings.allow_revoke_all:
        raise UnsupportedTokenType()


async def find_token(x: Exchange) -> None:
    if x.hint != token_finder.ALL:
        x.credential = await token_finder.find_credential(x.services, x.tenant, x.token)


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


async def revoke(x: Exchange) -> None:
    if x.hint == token_finder.ALL:
        plan = cascade.revoke_all_plan(x.authenticated.client_id, x.now)
    elif x.credential is not None and x.credential.is_live(x.now):
        plan = cascade.plan_for(x.credential, x.tenant.settings.cascade, x.now)
    else:
        x.log(outcome="nothing_to_revoke")
        return
    outcome = await x.services.store.apply_revocation(x.tenant.tenant_id, plan)
    x.log(
        outcome="revoked" if outcome.applied else "already_revoked",
        revoked=outcome.count,
        cause=plan.cause,
    )


async def respond(x: Exchange) -> None:
    x.response = Response(status_code=200, headers=NO_STORE)


STEPS: tuple[Step, ...] = (
    ensure_enabled,
    parse_form,
    authenticate_client,
    ensure_client_may_revoke,
    require_token,
    read_hint,
    find_token,
    check_owner,
    revoke,
    respond,
)


async def revocation_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, "revocation"), STEPS)
