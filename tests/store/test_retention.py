"""Retention purges (``Store.purge_events``, ``purge_marks``, ``purge_ended_sessions``):
what is past the cut-off goes, at most ``limit`` a call, one tenant at a time; what is
newer, or still needed by a live credential, stays."""

from __future__ import annotations

import pytest

from app.models import MarkKind, NotBeforeMark, RevocationPlan
from app.store.base import Store
from tests.store.records import NOW, RT, add_tenant, credential, revoke_token, revoked

DAY = 86_400


@pytest.fixture
async def two(store: Store) -> Store:
    """Two tenants, so that each purge is seen to stay within its own."""
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    return store


async def note(store: Store, tenant_id: str, time: int) -> int:
    """Append one event at ``time``: its id."""
    plan = RevocationPlan(time, "test", events=(revoked("test", time),))
    outcome = await store.apply_revocation(tenant_id, plan)
    [event_id] = outcome.event_ids
    return event_id


async def mark(store: Store, tenant_id: str, key: str, at: int) -> None:
    plan = RevocationPlan(at, "grant", marks=(NotBeforeMark(MarkKind.GRANT, key, at),))
    assert (await store.apply_revocation(tenant_id, plan)).applied


async def end(store: Store, tenant_id: str, session: str, at: int) -> None:
    assert (
        await store.apply_revocation(tenant_id, RevocationPlan(at, "spid", end_sessions=(session,)))
    ).applied


async def event_ids(store: Store, tenant_id: str) -> list[int]:
    return [e.id for e in await store.list_events(tenant_id, 0, 1_000)]


# --- events ----------------------------------------------------------------------------


async def test_events_before_the_cut_off_go_oldest_first_in_bounded_calls(two: Store) -> None:
    for tenant_id in ("acme", "globex"):
        for n in range(5):
            await note(two, tenant_id, NOW - 10 + n)  # times NOW-10 … NOW-6
        await note(two, tenant_id, NOW)
    assert await two.purge_events("acme", NOW - 7, limit=2) == 2
    assert await event_ids(two, "acme") == [3, 4, 5, 6]
    assert await two.purge_events("acme", NOW - 7, limit=2) == 1
    assert await two.purge_events("acme", NOW - 7, limit=2) == 0
    # The cut-off is exclusive: event 4, at NOW - 7, stays.
    assert await event_ids(two, "acme") == [4, 5, 6]
    assert await event_ids(two, "globex") == [1, 2, 3, 4, 5, 6]
    assert await two.purge_events("acme", NOW, limit=100) == 2
    assert await event_ids(two, "acme") == [6]


async def test_calls_drop_at_most_limit_and_none_only_when_none_is_due(two: Store) -> None:
    for time in (NOW - 5, NOW - 5, NOW - 5, NOW - 4, NOW):
        await note(two, "acme", time)
    calls = [await two.purge_events("acme", NOW, limit=2)]
    while calls[-1]:
        calls.append(await two.purge_events("acme", NOW, limit=2))
    assert all(0 < n <= 2 for n in calls[:-1])
    assert sum(calls) == 4
    assert await event_ids(two, "acme") == [5]


async def test_ids_go_on_after_a_purge_so_cursors_stay_valid(two: Store) -> None:
    for n in range(3):
        await note(two, "acme", NOW + n)
    assert await two.purge_events("acme", NOW + 10, limit=100) == 3
    assert await event_ids(two, "acme") == []
    assert await note(two, "acme", NOW + 20) == 4
    assert [e.id for e in await two.list_events("acme", 3, 10)] == [4]


# --- not-before marks -------------------------------------------------------------------


async def test_marks_set_before_the_cut_off_go(two: Store) -> None:
    for tenant_id in ("acme", "globex"):
        await mark(two, tenant_id, "old-1", NOW - 20)
        await mark(two, tenant_id, "old-2", NOW - 10)
        await mark(two, tenant_id, "edge", NOW)
        await mark(two, tenant_id, "new", NOW + 10)
    assert await two.purge_marks("acme", NOW, limit=1) == 1
    assert await two.not_before("acme", [(MarkKind.GRANT, "old-1")]) is None
    assert await two.not_before("acme", [(MarkKind.GRANT, "old-2")]) == NOW - 10
    assert await two.purge_marks("acme", NOW, limit=10) == 1
    assert await two.purge_marks("acme", NOW, limit=10) == 0
    for key, at in (("edge", NOW), ("new", NOW + 10)):
        assert await two.not_before("acme", [(MarkKind.GRANT, key)]) == at
    assert await two.not_before("globex", [(MarkKind.GRANT, "old-1")]) == NOW - 20


async def test_a_mark_set_again_counts_from_its_latest_time(two: Store) -> None:
    await mark(two, "acme", "g1", NOW - 100)
    await mark(two, "acme", "g1", NOW + 100)
    assert await two.purge_marks("acme", NOW, limit=10) == 0
    assert await two.not_before("acme", [(MarkKind.GRANT, "g1")]) == NOW + 100


# --- ended sessions ---------------------------------------------------------------------


async def test_an_ended_session_stays_while_a_stored_credential_of_it_is_live(two: Store) -> None:
    for tenant_id in ("acme", "globex"):
        await two.register_credentials(
            tenant_id,
            [
                credential(tenant_id, "live", RT, device_session_id="s-live", exp=NOW + DAY),
                credential(tenant_id, "expired", RT, device_session_id="s-expired", exp=NOW),
                credential(tenant_id, "revoked", RT, device_session_id="s-revoked", exp=NOW + DAY),
            ],
        )
        await two.apply_revocation(tenant_id, revoke_token("revoked", at=NOW - 50))
        for session in ("s-live", "s-expired", "s-revoked", "s-bare"):
            await end(two, tenant_id, session, NOW - 40)
        await end(two, tenant_id, "s-recent", NOW)

    assert await two.purge_ended_sessions("acme", NOW, NOW, limit=10) == 3
    for session in ("s-expired", "s-revoked", "s-bare"):
        assert await two.ended_session("acme", session) is None
    assert await two.ended_session("acme", "s-live") == NOW - 40
    assert await two.ended_session("acme", "s-recent") == NOW
    assert await two.ended_session("globex", "s-bare") == NOW - 40
    # Once its last credential has expired, the session goes too.
    assert await two.purge_ended_sessions("acme", NOW, NOW + DAY, limit=10) == 1
    assert await two.ended_session("acme", "s-live") is None


async def test_kept_sessions_do_not_stop_the_purge_of_later_ones(two: Store) -> None:
    """The oldest ended sessions are kept (live credentials); the calls still reach the
    ones after them, ``limit`` at a time, and report a full chunk until they are done."""
    kept = [f"kept-{n}" for n in range(3)]
    await two.register_credentials(
        "acme", [credential("acme", s, RT, device_session_id=s, exp=NOW + DAY) for s in kept]
    )
    for n, session in enumerate(kept):
        await end(two, "acme", session, NOW - 100 + n)
    for n in range(5):
        await end(two, "acme", f"gone-{n}", NOW - 50 + n)
    assert await two.purge_ended_sessions("acme", NOW, NOW, limit=2) == 2
    assert await two.purge_ended_sessions("acme", NOW, NOW, limit=2) == 2
    assert await two.purge_ended_sessions("acme", NOW, NOW, limit=2) == 1
    assert await two.purge_ended_sessions("acme", NOW, NOW, limit=2) == 0
    for session in kept:
        assert await two.ended_session("acme", session) is not None
    for n in range(5):
        assert await two.ended_session("acme", f"gone-{n}") is None
