"""Finding a presented token: the type hint, the registered credential, then a JWT.

Tokens are looked up by their keyed hash in one index that holds every type, so the hint
cannot narrow the search: a token of another type than hinted is always found (RFC 7009
section 2.1). An unknown hint is ignored; the ``urn:ietf:params:oauth:token-type:*``
forms are accepted.

A token that is not registered may be one of the tenant's JWTs (``rfc9068``): tried
only after the registered lookup, and only in a tenant with JWT keys.

After a master-key rotation a token may be stored under the hash of an older key
(``app.keys``): the lookup tries each key of the ring, the current one first, so a miss
costs one HMAC and one index lookup per key. A token is registered again under the hash
it already has, so a revoked token never comes back under a new key's hash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from app.directory import TenantView
from app.models import Credential, Tenant, TokenType
from app.oauth import rfc9068
from app.services import Services
from app.types import TokenHash

ALL: Final = "all"
URN_PREFIX = "urn:ietf:params:oauth:token-type:"
HINTS: dict[str, TokenType] = {t.value: t for t in TokenType}
REGISTRATION_LOOKUPS = 100
"""Lookups under older keys in flight at once while registering (MongoDB round trips)."""


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
    tenant_id, salt = tenant.tenant_id, tenant.record.key_salt
    for token_hash in services.keys.token_hashes(tenant_id, salt, token):
        found = await services.store.find_credential(tenant_id, token_hash)
        if found is not None:
            return found
    # Another process may have rotated the master key a moment ago and registered the
    # token under the new one: a miss looks at the ring file (one stat) before it stands.
    if services.keys.refresh(force=True):
        return await find_credential(services, tenant, token)
    return None


async def registration_hashes(
    services: Services, tenant: Tenant, tokens: Sequence[str]
) -> list[TokenHash]:
    """The hash to register each token under: the current key's, unless an older key of
    the ring already stores it (then the store sees a duplicate, or a revoked credential
    that stays revoked). One lookup per token and older key; none with a single key."""
    tenant_id, salt = tenant.tenant_id, tenant.key_salt
    candidates = [services.keys.token_hashes(tenant_id, salt, token) for token in tokens]
    if len(services.keys.keys) == 1:
        return [hashes[0] for hashes in candidates]

    async def stored(hashes: tuple[TokenHash, ...]) -> TokenHash:
        for older in hashes[1:]:
            if await services.store.find_credential(tenant_id, older) is not None:
                return older
        return hashes[0]

    chosen: list[TokenHash] = []
    for start in range(0, len(candidates), REGISTRATION_LOOKUPS):
        chunk = candidates[start : start + REGISTRATION_LOOKUPS]
        chosen += await asyncio.gather(*(stored(hashes) for hashes in chunk))
    return chosen


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
