"""Steps that the public endpoints share: the form, client authentication, the token."""

from __future__ import annotations

from app.errors import InsufficientScope, InvalidClient, InvalidRequest
from app.oauth import client_auth
from app.oauth.endpoint import Exchange, Step
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


def require_confidential_client(endpoint: str) -> Step:
    """The step refusing a public client: it authenticates by naming itself, so anyone
    could call as it. ``endpoint`` names what needs the client in the error."""

    async def require_confidential_client(x: Exchange) -> None:
        if not x.authenticated.confidential:
            raise InvalidClient(
                f"{endpoint} needs a confidential client", client_id=x.authenticated.client_id
            )

    return require_confidential_client


def require_scope(scope: str) -> Step:
    """The step refusing a client without ``scope``."""

    async def require_scope(x: Exchange) -> None:
        if scope not in x.authenticated.client.scope:
            raise InsufficientScope(f"the client lacks the scope {scope}")

    return require_scope
