"""Steps that the public endpoints share: the form, client authentication, the token."""

from __future__ import annotations

from app.errors import InvalidRequest
from app.oauth import client_auth
from app.oauth.endpoint import Exchange
from app.oauth.form import read_form


async def parse_form(x: Exchange) -> None:
    x.form = await read_form(x.request, x.services.config.max_body_bytes)


async def authenticate_client(x: Exchange) -> None:
    x.client = await client_auth.authenticate(
        x.services,
        x.tenant,
        x.request,
        x.form,
        # The path below the issuer that the router matched (the tenancy middleware
        # strips the issuer's own path): a client assertion's ``aud`` may be its URL.
        endpoint_path=x.request.scope["path"],
        now=x.now,
    )
    x.log(client_id=x.client.client_id, auth_method=x.client.method)


async def require_token(x: Exchange) -> None:
    x.token = x.form.get("token", "")
    if not x.token:
        raise InvalidRequest("the token parameter is missing")
