"""The event feed: ids in commit order per tenant, paged with after/limit."""

from __future__ import annotations

import asyncio

import pytest

from app.models import Event, EventDraft, RevocationPlan
from app.store.base import Store
from tests.store.records import NOW, add_tenant, revoked


@pytest.fixture
async def acme(store: Store) -> Store:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    return store


def note(n: int, tenant: str = "acme") -> RevocationPlan:
    """A plan that only appends one event, told apart by its ``jti``."""
    return RevocationPlan(NOW + n, "test", events=(revoked("test", NOW + n, jti=f"{tenant}-{n}"),))


async def test_event_fields_round_trip(acme: Store) -> None:
    draft = EventDraft(
        type="session_ended",
        cause="spid",
        time=NOW,
        client_id="app",
        sub="alice",
        grant_id="g1",
        token_type="refresh_token",
        jti="j1",
        device_session_id="s1",
        count=3,
    )
    outcome = await acme.apply_revocation("acme", RevocationPlan(NOW, "spid", events=(draft,)))
    [event_id] = outcome.event_ids
    assert await acme.list_events("acme", 0, 10) == [
        Event(
            id=event_id,
            time=NOW,
            type="session_ended",
            cause="spid",
            count=3,
            client_id="app",
            sub="alice",
            grant_id="g1",
            token_type="refresh_token",
            jti="j1",
            device_session_id="s1",
        )
    ]


async def test_ids_grow_in_commit_order(acme: Store) -> None:
    ids: list[int] = []
    for n in range(5):
        ids += (await acme.apply_revocation("acme", note(n))).event_ids
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert ids[0] > 0
    events = await acme.list_events("acme", 0, 100)
    assert [(e.id, e.jti) for e in events] == [(i, f"acme-{n}") for n, i in enumerate(ids)]


async def test_one_plan_appends_its_events_in_order(acme: Store) -> None:
    drafts = tuple(revoked("test", NOW, jti=str(n)) for n in range(3))
    outcome = await acme.apply_revocation("acme", RevocationPlan(NOW, "test", events=drafts))
    events = await acme.list_events("acme", 0, 10)
    assert [e.id for e in events] == list(outcome.event_ids)
    assert [e.jti for e in events] == ["0", "1", "2"]


async def test_paging_with_after_and_limit(acme: Store) -> None:
    for n in range(7):
        await acme.apply_revocation("acme", note(n))
    pages: list[list[str | None]] = []
    after = 0
    while page := await acme.list_events("acme", after, 3):
        pages.append([e.jti for e in page])
        after = page[-1].id
    assert pages == [
        ["acme-0", "acme-1", "acme-2"],
        ["acme-3", "acme-4", "acme-5"],
        ["acme-6"],
    ]
    assert await acme.list_events("acme", after, 3) == []


async def test_concurrent_appends_get_distinct_ordered_ids(acme: Store) -> None:
    outcomes = await asyncio.gather(
        *(
            acme.apply_revocation(tenant, note(n, tenant))
            for n in range(30)
            for tenant in ("acme", "globex")
        )
    )
    for tenant in ("acme", "globex"):
        events = await acme.list_events(tenant, 0, 100)
        assert len(events) == 30
        assert [e.id for e in events] == sorted({e.id for e in events})
        assert {e.jti for e in events} == {f"{tenant}-{n}" for n in range(30)}
    assert sum(len(o.event_ids) for o in outcomes) == 60


async def test_events_never_cross_tenants(acme: Store) -> None:
    await acme.apply_revocation("acme", note(1))
    await acme.apply_revocation("globex", note(2, "globex"))
    assert [e.jti for e in await acme.list_events("acme", 0, 10)] == ["acme-1"]
    assert [e.jti for e in await acme.list_events("globex", 0, 10)] == ["globex-2"]
    assert await acme.list_events("initech", 0, 10) == []
