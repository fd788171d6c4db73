"""Where a credential sits in its tenant's Token Status Lists (the IETF OAuth Token
Status List draft), and the ``status`` claim the authorization server puts in the token.

A tenant with ``status_list.enabled`` hands each credential it registers a *global*
index, from a per-tenant sequence that never hands one out twice (one allocation per
registration request). Global index ``g`` is entry ``g % LIST_SIZE`` of list number
``g // LIST_SIZE + 1``, served at ``{issuer}/status-lists/{n}``: lists have a fixed
size, so a list's URI never changes and a new one starts only when the last is full.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from app.directory import TenantView
from app.models import Credential, RegistrationOutcome
from app.services import Services
from app.types import JSON, TokenHash

LIST_SIZE = 1 << 20
"""Entries per list: 128 KiB of bits before compression. Every list has this size,
however few of its entries are handed out, so a list does not tell how many tokens the
tenant issued."""

PATH = "/status-lists"


def aggregation_uri(tenant: TenantView) -> str:
    """The tenant's Status List Aggregation endpoint (the list of its lists)."""
    return f"{tenant.issuer}{PATH}"


def list_uri(tenant: TenantView, number: int) -> str:
    """The URI of list ``number`` (from 1): the Status List Token's ``sub``."""
    return f"{tenant.issuer}{PATH}/{number}"


def list_count(allocated: int) -> int:
    """How many lists hold the first ``allocated`` indexes."""
    return -(-allocated // LIST_SIZE)


def reference(tenant: TenantView, global_index: int) -> JSON:
    """The Referenced Token's ``status`` claim for a global index."""
    number, idx = divmod(global_index, LIST_SIZE)
    return {"status_list": {"idx": idx, "uri": list_uri(tenant, number + 1)}}


async def assign(
    services: Services, tenant: TenantView, credentials: Sequence[Credential]
) -> list[Credential]:
    """``credentials`` with an index each (a token repeated in the batch: the same one)."""
    unique = list(dict.fromkeys(c.token_hash for c in credentials))
    if not unique:
        return list(credentials)
    first = await services.store.allocate_status_indexes(tenant.tenant_id, len(unique))
    index = {token_hash: first + i for i, token_hash in enumerate(unique)}
    return [dataclasses.replace(c, status_idx=index[c.token_hash]) for c in credentials]


async def with_references(
    services: Services,
    tenant: TenantView,
    credentials: Sequence[Credential],
    outcome: RegistrationOutcome,
) -> RegistrationOutcome:
    """``outcome`` with each credential's ``status`` claim. A credential that was already
    registered keeps the index it was stored with (none, when the tenant had no list
    then), so it is read back whenever the batch held one."""
    given: dict[TokenHash, int | None] = {c.token_hash: c.status_idx for c in credentials}
    if outcome.duplicates > len(credentials) - len(given):
        stored = await services.store.stored_status_indexes(tenant.tenant_id, list(given))
        given = {token_hash: stored.get(token_hash) for token_hash in given}
    status = tuple(
        None if (g := given[c.token_hash]) is None else reference(tenant, g) for c in credentials
    )
    return dataclasses.replace(outcome, status=status)
