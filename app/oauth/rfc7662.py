"""``POST {issuer}/token/introspect``: OAuth 2.0 Token Introspection (RFC 7662).

Callers are confidential clients of the tenant with the scope ``introspect``
(section 2.1). Revoked, expired, unknown, other-tenant and malformed tokens are all
``{"active": false}`` (section 2.2), so a caller learns nothing about them. A JWT
signed with the tenant's keys (RFC 9068) is answered from its verified claims.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.errors import NotFound
from app.models import Credential, JwtCredential, TokenType
from app.oauth import token_finder
from app.oauth.abuse_limits import limit_failures
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.interception import load_plugins, map_response, with_pre_auth
from app.oauth.steps import (
    authenticate_client,
    parse_form,
    require_confidential_client,
    require_scope,
    require_token,
)
from app.responses import NO_STORE, FastJSONResponse

INTROSPECT = "introspect"
TOKEN_TYPES = {
    TokenType.ACCESS_TOKEN: "Bearer",
    TokenType.REFRESH_TOKEN: "refresh_token",
    TokenType.DEVICE_SECRET: "device_secret",
}


async def ensure_enabled(x: Exchange) -> None:
    if not x.tenant.settings.introspection_enabled:
        raise NotFound("the introspection endpoint is disabled for this tenant")


async def find_token(x: Exchange) -> None:
    x.credential = await token_finder.find(x.services, x.tenant, x.token, x.now, x.log)


async def is_active(x: Exchange, c: Credential) -> bool:
    """Live (a JWT: not denied, not under a not-before mark, not expired), not before its
    ``nbf``; a device secret's session not ended, and a refresh token's not ended with its
    tokens (an SPID logout ends the session and keeps the subject's tokens valid)."""
    if not c.is_live(x.now):
        return False
    if isinstance(c, JwtCredential) and c.nbf is not None and c.nbf > x.now:
        return False
    if c.device_session_id and c.type is not TokenType.ACCESS_TOKEN:
        # Never active again, a refresh token registered after the end too.
        ended = await x.services.store.ended_session(
            x.tenant.tenant_id,
            c.device_session_id,
            tokens=c.type is TokenType.REFRESH_TOKEN,
        )
        return ended is None
    return True


async def respond(x: Exchange) -> None:
    c = x.credential
    body: dict[str, Any] = {"active": False}
    if c is not None and await is_active(x, c):
        body = {
            "active": True,
            "token_type": TOKEN_TYPES[c.type],
            "client_id": c.client_id,
            "sub": c.sub,
            "scope": c.scope,
            "exp": c.exp,
            "iat": c.iat,
            "iss": x.tenant.issuer,
            "jti": c.jti if isinstance(c, JwtCredential) else None,
            "grant_id": c.grant_id,
        }
        body = {k: v for k, v in body.items() if v is not None}
    x.log(active=body["active"])
    x.response = FastJSONResponse(body, headers=NO_STORE)


STEPS: tuple[Step, ...] = (
    ensure_enabled,
    load_plugins,
    parse_form,
    limit_failures(with_pre_auth(authenticate_client)),
    require_confidential_client("introspection"),
    require_scope(INTROSPECT),
    require_token,
    find_token,
    respond,
)


async def introspection_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, "introspection"), STEPS, (map_response,))
