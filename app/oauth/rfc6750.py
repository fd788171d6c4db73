"""A caller authenticated by an OAuth 2.0 Bearer token (RFC 6750 section 2.1), where an
endpoint accepts one besides client authentication (the Global Token Revocation draft
names it as a way to authenticate its request).

The token must be a live access token of the tenant, registered or a JWT (RFC 9068)
signed with its keys, issued to an enabled client of the tenant; the caller is that
client, with the token's scope. A token that is not is ``401 invalid_token`` with
``WWW-Authenticate: Bearer`` (section 3.1), counted as a failed authentication like an
``invalid_client`` (contract section 7): it is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from app.directory import TenantView
from app.errors import InvalidClient
from app.models import JwtCredential, TokenType
from app.oauth import token_finder
from app.oauth.client_auth import AuthenticatedClient
from app.oauth.rfc9068 import Note
from app.services import Services

SCHEME = "bearer"
METHOD = "Bearer"
"""How discovery names it: the IANA "OAuth Access Token Types" value."""


class InvalidToken(InvalidClient):
    """The bearer token is not a live access token of the tenant (RFC 6750 section 3.1)."""

    error = "invalid_token"
    DESCRIPTION = "The access token is invalid, expired or revoked"

    def __init__(self, cause: str, realm: str, *, client_id: str | None = None) -> None:
        super().__init__(cause, client_id=client_id)
        self.headers["WWW-Authenticate"] = f'Bearer realm="{realm}", error="invalid_token"'


@dataclass(frozen=True, slots=True)
class BearerCaller:
    caller: AuthenticatedClient
    scope: frozenset[str]
    """The token's scope: what the caller may do."""


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None for any other header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == SCHEME else None


async def authenticate(
    services: Services, tenant: TenantView, token: str, now: int, note: Note
) -> BearerCaller:
    realm = tenant.issuer
    if not token:
        raise InvalidToken("empty bearer token", realm)
    found = await token_finder.find(services, tenant, token, now, note)
    if found is None or found.type is not TokenType.ACCESS_TOKEN:
        raise InvalidToken("not an access token of this tenant", realm)
    if not found.is_live(now):
        raise InvalidToken("revoked or expired access token", realm, client_id=found.client_id)
    if isinstance(found, JwtCredential) and found.nbf is not None and found.nbf > now:
        raise InvalidToken("access token not yet valid (nbf)", realm, client_id=found.client_id)
    client = await services.directory.client(tenant.tenant_id, found.client_id)
    if client is None or not client.enabled:
        raise InvalidToken(
            "the token's client is unknown or disabled", realm, client_id=found.client_id
        )
    scope = frozenset((found.scope or "").split())
    return BearerCaller(AuthenticatedClient(client, METHOD), scope)
