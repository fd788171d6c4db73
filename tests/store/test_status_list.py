"""Token Status List indexes: handed out once each, stored with their credentials, and
read back as the revoked ones of a range (those a pending sweep covers included)."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.errors import NotFound
from app.models import Credential
from app.oauth.cascade import revoke_all_plan
from app.store.base import Store
from app.store.mongodb import store as mongodb_store
from app.store.sqlite import schema
from app.store.sqlite import status_list as sqlite_status
from app.store.sqlite import store as sqlite_store
from tests.store.records import NOW, add_tenant, credential, h, revoke_token
from tests.store.test_mass_revocation import stop_after_the_first_chunk


@pytest.fixture
async def acme(store: Store) -> Store:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    return store


def indexed(tenant_id: str, token: str, idx: int | None, **fields: Any) -> Credential:
    return dataclasses.replace(credential(tenant_id, token, **fields), status_idx=idx)


async def test_indexes_are_handed_out_once_each_per_tenant(acme: Store) -> None:
    assert await acme.allocated_status_indexes("acme") == 0
    assert await acme.allocate_status_indexes("acme", 3) == 0
    assert await acme.allocate_status_indexes("acme", 1) == 3
    firsts = await asyncio.gather(*(acme.allocate_status_indexes("acme", 5) for _ in range(20)))
    handed = sorted(i for first in firsts for i in range(first, first + 5))
    assert handed == list(range(4, 104))  # disjoint and without gaps
    assert await acme.allocated_status_indexes("acme") == 104
    # Another tenant has a sequence of its own.
    assert await acme.allocated_status_indexes("globex") == 0
    assert await acme.allocate_status_indexes("globex", 2) == 0


async def test_allocation_needs_the_tenant(acme: Store) -> None:
    with pytest.raises(NotFound):
        await acme.allocate_status_indexes("nobody", 1)
    assert await acme.allocated_status_indexes("nobody") == 0


async def test_the_index_is_stored_with_the_credential(acme: Store) -> None:
    await acme.register_credentials(
        "acme", [indexed("acme", "a", 7), indexed("acme", "b", None), indexed("acme", "c", 9)]
    )
    found = await acme.find_credential("acme", h("a"))
    assert found is not None and found.status_idx == 7
    found = await acme.find_credential("acme", h("b"))
    assert found is not None and found.status_idx is None
    stored = await acme.stored_status_indexes("acme", [h("a"), h("b"), h("c"), h("zzz")])
    assert stored == {h("a"): 7, h("c"): 9}
    assert await acme.stored_status_indexes("globex", [h("a")]) == {}
    # A duplicate registration keeps what was stored.
    outcome = await acme.register_credentials("acme", [indexed("acme", "a", 99)])
    assert outcome.duplicates == 1
    assert await acme.stored_status_indexes("acme", [h("a")]) == {h("a"): 7}


async def test_revoked_indexes_of_a_range(acme: Store) -> None:
    await acme.register_credentials(
        "acme", [indexed("acme", f"t{i}", i) for i in range(10)] + [indexed("acme", "x", None)]
    )
    await acme.register_credentials("globex", [indexed("globex", "t5", 5)])
    for token in ("t1", "t4", "t5", "t9", "x"):
        assert (await acme.apply_revocation("acme", revoke_token(token))).applied
    assert (await acme.apply_revocation("globex", revoke_token("t5"))).applied
    assert await acme.revoked_status_indexes("acme", 0, 10) == [1, 4, 5, 9]
    assert await acme.revoked_status_indexes("acme", 4, 9) == [4, 5]
    assert await acme.revoked_status_indexes("acme", 10, 20) == []
    assert await acme.revoked_status_indexes("globex", 0, 10) == [5]


async def test_a_pending_sweep_counts_as_revoked(
    acme: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "SWEEP_CHUNK", 3)
    monkeypatch.setattr(mongodb_store, "SWEEP_CHUNK", 3)
    mine = [indexed("acme", f"app-{i}", i) for i in range(10)]
    others = [indexed("acme", "web", 10, client_id="web")]
    await acme.register_credentials("acme", [*mine, *others])
    stop_after_the_first_chunk(acme, monkeypatch)
    with pytest.raises(Exception):  # noqa: B017 - the stopped process's error
        await acme.apply_revocation("acme", revoke_all_plan("app", NOW + 10))
    monkeypatch.undo()
    assert await acme.revoked_status_indexes("acme", 0, 100) == list(range(10))
    assert await acme.finish_sweeps(0) == 1
    assert await acme.revoked_status_indexes("acme", 0, 100) == list(range(10))


def test_a_list_is_read_from_the_index_of_revoked_credentials(tmp_path: Path) -> None:
    """Building a list of a million credentials reads its revoked ones only."""
    conn = sqlite3.connect(tmp_path / "store.sqlite3")
    for migration in schema.MIGRATIONS:
        for statement in migration:
            conn.execute(statement)
    params = {"tenant": "acme", "low": 0, "high": 10}
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sqlite_status.REVOKED, params)]
    assert plan == [
        "SEARCH credentials USING COVERING INDEX credentials_status"
        " (tenant_id=? AND status_idx>? AND status_idx<?)"
    ], plan
    conn.close()
