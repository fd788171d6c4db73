"""Finding a presented token: the type hint, the registered credential, then a JWT.

Tokens are looked up by their keyed hash in one index that holds every type, so the hint
cannot narrow the search: a token of another type than hinted is always found (RFC 7009
section 2.1). An unknown hint is ignored; the ``urn:ietf:params:oauth:token-type:*``
forms are accepted.

A token that is not registered may be one of the tenant's JWTs (``rfc9068``): tried
only after the registered lookup, and only in a tenant with JWT keys.
"""

from __future__ import annotations

from typing import Final

from app.directory import TenantView
from app.models import Credential, TokenType
from app.oauth import rfc9068
from app.services import Services

ALL: Final = "all"
URN_PREFIX = "urn:ietf:params:oauth:token-type:"
HINTS: dict[str, TokenType] = {t.value: t for t in TokenType}


def parse_hint(value: str | None) -> TokenType | str | None:
    """A token type, ``"all"``, or None (absent or unknown: ignored)."""
    if value is None:
        return None
    if value == ALL:
        return ALL
    if value.startswith(URN_PREFIX):
        value = value[len(URN_PREFIX) :]
    return HINTS.get(value)


async def find_credential(services: Services, tenant: TenantView, token: str) -> Credential | None:
    token_hash = services.keys.token_hash(tenant.tenant_id, tenant.record.key_salt, token)
    return await services.store.find_credential(tenant.tenant_id, token_hash)


def _ignore(**fields: object) -> None:
    pass


async def find(
    services: Services,
    tenant: TenantView,
    token: str,
    now: int,
    note: rfc9068.Note = _ignore,
) -> Credential | None:
    """The registered credential, or else the tenant's JWT (with its revocation state as
    of ``now``), or None. ``note`` takes fields for the request's log line."""
    found = await find_credential(services, tenant, token)
    if found is not None:
        return found
    return await rfc9068.find(services, tenant, token, now, note)
