"""Finding a presented token: the type hint, then the registered credential.

Tokens are looked up by their keyed hash in one index that holds every type, so the hint
cannot narrow the search: a token of another type than hinted is always found (RFC 7009
section 2.1). An unknown hint is ignored; the ``urn:ietf:params:oauth:token-type:*``
forms are accepted.
"""

from __future__ import annotations

from typing import Final

from app.directory import TenantView
from app.models import Credential, TokenType
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
