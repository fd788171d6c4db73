"""Sweeps (``app.store.sweeps``): a client's every credential, or a subject's of one
client, revoked at once as reads see it and written in chunks; interrupted, finished by
housekeeping; credentials registered afterwards judged by their ``iat``."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from app.errors import StoreUnavailable
from app.models import (
    ByClient,
    ByClientSubject,
    ByHash,
    Credential,
    MarkKind,
    NotBeforeMark,
    RevocationPlan,
)
from app.oauth.cascade import client_subject_key, revoke_all_plan
from app.store.base import Store
from app.store.mongodb import store as mongodb_store
from app.store.mongodb import sweeps as mongodb_sweeps
from app.store.sqlite import store as sqlite_store
from app.store.sqlite import sweeps as sqlite_sweeps
from app.store.sqlite.schema import migrate
from tests.store.records import AT, DS, NOW, RT, add_tenant, credential, h, revoke_token, revoked

CHUNK = 7
MANY = 50
"""More credentials than one chunk holds, several times over."""
WHEN = NOW + 100


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "SWEEP_CHUNK", CHUNK)
    monkeypatch.setattr(mongodb_store, "SWEEP_CHUNK", CHUNK)


@pytest.fixture
async def acme(store: Store) -> Store:
    """``MANY`` live credentials of ``app`` (of every type, for two subjects), some of it
    already revoked or expired, and credentials of another client and tenant."""
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    mine = [
        credential("acme", f"app-{i}", (AT, RT, DS)[i % 3], sub="alice" if i % 2 else "bob")
        for i in range(MANY)
    ]
    dead = [
        credential("acme", "revoked", revoked_at=NOW, revoked_cause="token"),
        credential("acme", "expired", exp=NOW + 50),
    ]
    others = [credential("acme", "web-1", client_id="web"), credential("globex", "app-0")]
    await store.register_credentials("acme", [*mine, *dead, others[0]])
    await store.register_credentials("globex", [others[1]])
    return store


async def state(store: Store, token: str, tenant_id: str = "acme") -> tuple[int | None, str | None]:
    found = await store.find_credential(tenant_id, h(token))
    assert found is not None
    return found.revoked_at, found.revoked_cause


async def revoked_count(store: Store, tokens: list[str]) -> int:
    return sum([(await state(store, token))[0] is not None for token in tokens])


APP = [f"app-{i}" for i in range(MANY)]
ALICE = APP[1::2]
BOB = APP[0::2]


async def test_revoking_a_client_with_more_than_a_chunk_is_whole_when_it_returns(
    acme: Store,
) -> None:
    outcome = await acme.apply_revocation("acme", revoke_all_plan("app", WHEN))

    assert (outcome.applied, outcome.count) == (True, MANY)
    assert {await state(acme, token) for token in APP} == {(WHEN, "all")}
    assert await state(acme, "revoked") == (NOW, "token")
    assert await state(acme, "web-1") == (None, None)
    assert await state(acme, "app-0", "globex") == (None, None)
    [event] = await acme.list_events("acme", 0, 10)
    assert (event.id, event.cause, event.count, event.client_id) == (1, "all", MANY, "app")
    assert list(outcome.event_ids) == [1]
    assert await acme.not_before("acme", [(MarkKind.CLIENT, "app")]) == WHEN
    assert await acme.finish_sweeps(0) == 0  # nothing left pending

    again = await acme.apply_revocation("acme", revoke_all_plan("app", WHEN + 1))
    assert (again.applied, again.count) == (True, 0)


async def test_a_withdrawal_sweeps_the_subjects_credentials_of_every_type(acme: Store) -> None:
    withdrawal = RevocationPlan(
        WHEN,
        "withdrawn",
        selectors=(ByClientSubject("app", "alice"),),
        delete_grants_of=(("app", "alice"),),
        marks=(NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key("app", "alice"), WHEN),),
        events=(revoked("withdrawn", WHEN, client_id="app", sub="alice"),),
    )
    outcome = await acme.apply_revocation("acme", withdrawal)

    assert outcome.count == len(ALICE)
    assert await revoked_count(acme, ALICE) == len(ALICE)
    assert await revoked_count(acme, BOB) == 0
    [event] = await acme.list_events("acme", 0, 10)
    assert (event.count, event.sub) == (len(ALICE), "alice")


async def test_a_plan_with_a_sweep_counts_its_other_selectors_in_the_one_event(
    acme: Store,
) -> None:
    """A plugin may widen a plan: the sweep's event counts everything the plan took."""
    widened = RevocationPlan(
        WHEN,
        "all",
        primary=h("web-1"),
        selectors=(ByClient("app"), ByHash(h("web-1"))),
        events=(revoked("all", WHEN, client_id="app"),),
    )
    outcome = await acme.apply_revocation("acme", widened)
    assert outcome.count == MANY + 1
    assert [e.count for e in await acme.list_events("acme", 0, 10)] == [MANY + 1]


def stop_after_the_first_chunk(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies once the sweep is committed and its first chunk written."""

    async def stopped(*args: Any) -> Any:
        raise StoreUnavailable("the process stopped")

    if isinstance(store, sqlite_store.SqliteStore):
        # The sweep's transaction writes its first chunk; each later one is a _sweep step.
        monkeypatch.setattr(store, "_sweep", stopped)
        return
    chunk = mongodb_sweeps._chunk
    calls = 0

    async def once(*args: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls > 1:
            await stopped()
        return await chunk(*args)

    monkeypatch.setattr(mongodb_sweeps, "_chunk", once)


async def test_an_interrupted_sweep_reads_as_whole_and_housekeeping_finishes_it(
    acme: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after_the_first_chunk(acme, monkeypatch)
    with pytest.raises(StoreUnavailable):
        await acme.apply_revocation("acme", revoke_all_plan("app", WHEN))
    monkeypatch.undo()

    # Committed: every covered credential reads as revoked, on any connection.
    assert {await state(acme, token) for token in APP} == {(WHEN, "all")}
    assert await state(acme, "web-1") == (None, None)
    # Revoking one of them again takes nothing and says nothing.
    outcome = await acme.apply_revocation("acme", revoke_token("app-3", at=WHEN + 1))
    assert not outcome.applied
    assert await acme.list_events("acme", 0, 10) == []
    # Registered now: issued after the revocation (or with no iat) stays active; issued
    # before it is revoked from the start.
    late = [
        credential("acme", "after", iat=WHEN + 1),
        credential("acme", "no-iat", iat=None),
        credential("acme", "before", iat=WHEN - 1, sub="alice"),
    ]
    assert (await acme.register_credentials("acme", late)).registered == 3

    assert await acme.finish_sweeps(0) == 1

    [event] = await acme.list_events("acme", 0, 10)
    assert (event.cause, event.count) == ("all", MANY)
    assert {await state(acme, token) for token in APP} == {(WHEN, "all")}
    assert await state(acme, "after") == (None, None)
    assert await state(acme, "no-iat") == (None, None)
    assert await state(acme, "before") == (WHEN, "not_before")
    assert await acme.finish_sweeps(0) == 0


async def test_a_sweep_that_is_being_advanced_is_left_to_its_process(
    acme: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after_the_first_chunk(acme, monkeypatch)
    with pytest.raises(StoreUnavailable):
        await acme.apply_revocation("acme", revoke_all_plan("app", WHEN))
    monkeypatch.undo()
    assert await acme.finish_sweeps(3600) == 0
    assert await acme.list_events("acme", 0, 10) == []
    assert await acme.finish_sweeps(0) == 1


async def test_a_second_sweep_of_the_client_takes_what_was_registered_in_between(
    acme: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after_the_first_chunk(acme, monkeypatch)
    with pytest.raises(StoreUnavailable):
        await acme.apply_revocation("acme", revoke_all_plan("app", WHEN))
    monkeypatch.undo()
    await acme.register_credentials("acme", [credential("acme", "between", iat=WHEN + 1)])

    outcome = await acme.apply_revocation("acme", revoke_all_plan("app", WHEN + 2))

    assert await state(acme, "between") == (WHEN + 2, "all")
    assert await acme.finish_sweeps(0) == 1
    counts = [e.count for e in await acme.list_events("acme", 0, 10)]
    assert sorted(counts) == sorted([outcome.count, MANY + 1 - outcome.count])


async def test_deleting_a_tenant_with_a_pending_sweep_leaves_nothing(
    acme: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop_after_the_first_chunk(acme, monkeypatch)
    with pytest.raises(StoreUnavailable):
        await acme.apply_revocation("acme", revoke_all_plan("app", WHEN))
    monkeypatch.undo()

    assert await acme.delete_tenant("acme")
    assert await acme.finish_sweeps(0) == 0
    await add_tenant(acme, "acme")
    assert await acme.find_credential("acme", h("app-1")) is None
    await acme.register_credentials("acme", [credential("acme", "fresh", iat=None)])
    assert await state(acme, "fresh") == (None, None)
    assert await acme.list_events("acme", 0, 10) == []


# --- credentials registered after a revocation ------------------------------------------


def withdrawal_mark(at: int) -> NotBeforeMark:
    return NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key("app", "alice"), at)


@pytest.mark.parametrize(
    ("mark", "late", "revoked_from_the_start"),
    [
        (NotBeforeMark(MarkKind.CLIENT, "app", WHEN), credential("acme", "x", DS), True),
        (withdrawal_mark(WHEN), credential("acme", "x", RT, sub="alice"), True),
        (withdrawal_mark(WHEN), credential("acme", "x", RT, sub="bob"), False),
        # A device secret is not under a (client, subject) mark: see covering_marks.
        (withdrawal_mark(WHEN), credential("acme", "x", DS, sub="alice"), False),
        (NotBeforeMark(MarkKind.GRANT, "g1", WHEN), credential("acme", "x", grant_id="g1"), True),
        (
            NotBeforeMark(MarkKind.GRANT, "g1", WHEN),
            credential("acme", "x", RT, grant_id="g1"),
            False,
        ),
        (NotBeforeMark(MarkKind.CLIENT, "app", WHEN), credential("acme", "x", iat=WHEN), True),
        (NotBeforeMark(MarkKind.CLIENT, "app", WHEN), credential("acme", "x", iat=WHEN + 1), False),
        (NotBeforeMark(MarkKind.CLIENT, "app", WHEN), credential("acme", "x", iat=None), False),
        (NotBeforeMark(MarkKind.CLIENT, "web", WHEN), credential("acme", "x"), False),
    ],
)
async def test_a_credential_issued_before_a_mark_and_registered_after_it_is_revoked(
    store: Store, mark: NotBeforeMark, late: Credential, revoked_from_the_start: bool
) -> None:
    await add_tenant(store, "acme")
    await store.apply_revocation("acme", RevocationPlan(WHEN, "test", marks=(mark,)))

    assert (await store.register_credentials("acme", [late])).registered == 1

    expected = (WHEN, "not_before") if revoked_from_the_start else (None, None)
    assert await state(store, "x") == expected
    assert (await store.register_credentials("acme", [late])).duplicates == 1


async def test_a_large_batch_is_judged_against_every_mark_it_falls_under(store: Store) -> None:
    """More subjects than one lookup of marks takes (their keys are read in chunks)."""
    await add_tenant(store, "acme")
    marks = [
        *(
            NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key("app", f"user{n}"), WHEN)
            for n in (7, 300, 599)
        ),
        NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key("app", "user8"), NOW - 100),
    ]
    await store.apply_revocation("acme", RevocationPlan(WHEN, "test", marks=tuple(marks)))
    batch = [credential("acme", f"c{n}", RT, sub=f"user{n}") for n in range(600)]

    assert (await store.register_credentials("acme", batch)).registered == 600

    revoked = [n for n in range(600) if (await state(store, f"c{n}"))[0] is not None]
    assert revoked == [7, 300, 599]


def test_sqlite_sweep_statements_walk_an_index() -> None:
    conn = sqlite3.connect(":memory:")
    migrate(conn)
    params = {"tenant": "t", "client": "c", "sub": "s", "after": 0, "limit": 9, "last": 9}
    params |= {"at": 1, "cause": "all", "sweep": 1}
    statements = [*sqlite_sweeps.CHUNK_END.values(), *sqlite_sweeps.SWEEP_CHUNK.values()]
    for statement in statements:
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
        assert "USING" in plan and "INDEX" in plan and "SCAN credentials" not in plan, plan
    lookup = "EXPLAIN QUERY PLAN " + sqlite_sweeps.FIND_CREDENTIAL
    plan = " ".join(row[3] for row in conn.execute(lookup, ("t", b"h")))
    assert "credentials_hash" in plan and "sweep_scopes_client" in plan, plan
    conn.close()
