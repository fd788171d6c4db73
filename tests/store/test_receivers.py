"""Receivers of Security Event Tokens: configuration, delivery state and log, on both
backends. The lease and the cursor are what several delivery workers rely on."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from app.errors import Conflict, NotFound
from app.models import DeliveryAttempt, Receiver, ReceiverState
from app.propagation.event_types import URI_OF
from app.store.base import Store
from tests.store.records import NOW, add_tenant

REVOKED = URI_OF["revoked"]
LEASE = 30


def receiver(tenant_id: str = "acme", receiver_id: str = "rs1", **fields: object) -> Receiver:
    values: dict[str, object] = {
        "delivery": "push",
        "events": (REVOKED,),
        "url": "https://rs.example/events",
        "authorization_sealed": b"\x05sealed",
        "audience": "https://rs.example",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Receiver(tenant_id=tenant_id, receiver_id=receiver_id, **values)  # type: ignore[arg-type]


def attempt(event_id: int, outcome: str = "delivered", **fields: object) -> DeliveryAttempt:
    values: dict[str, object] = {"time": NOW + event_id, "status": 202, "duration_ms": 3}
    values.update(fields)
    return DeliveryAttempt(event_id=event_id, outcome=outcome, **values)  # type: ignore[arg-type]


async def claimed(store: Store, owner: str = "w1", *, now: int = NOW) -> ReceiverState:
    state = await store.claim_receiver("acme", "rs1", owner, now, now + LEASE)
    assert state is not None
    return state


# --- configuration ---------------------------------------------------------------------


async def test_a_receiver_round_trips_and_starts_at_its_cursor(store: Store) -> None:
    await add_tenant(store, "acme")
    before = await store.config_version()
    given = receiver(client_id=None)

    stored, created = await store.put_receiver(given, 7)

    assert (stored, created) == (given, True)
    assert await store.get_receiver("acme", "rs1") == given
    assert await store.list_receivers("acme") == [given]
    assert await store.config_version() > before
    state = await store.get_receiver_state("acme", "rs1")
    assert state == ReceiverState("acme", "rs1", cursor=7)
    assert await store.delivery_log("acme", "rs1", 50) == []


async def test_a_poll_receiver_round_trips(store: Store) -> None:
    await add_tenant(store, "acme")
    given = receiver(
        delivery="poll",
        url=None,
        authorization_sealed=None,
        client_id="rp",
        audience=None,
        events=(REVOKED, URI_OF["session_ended"]),
    )
    await store.put_receiver(given, 0)
    assert await store.get_receiver("acme", "rs1") == given


async def test_replacing_keeps_created_at_and_the_cursor(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 7)
    state = await claimed(store)
    assert await store.record_delivery(replace(state, cursor=9, delivered=2), "w1", [], 10)

    stored, created = await store.put_receiver(
        receiver(url="https://other.example/", created_at=NOW + 50, updated_at=NOW + 50), 0
    )

    assert created is False
    assert (stored.created_at, stored.updated_at, stored.url) == (
        NOW,
        NOW + 50,
        "https://other.example/",
    )
    assert await store.get_receiver("acme", "rs1") == stored
    after = await store.get_receiver_state("acme", "rs1")
    assert after is not None and (after.cursor, after.delivered) == (9, 2)


async def test_a_receiver_needs_its_tenant(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.put_receiver(receiver("ghost"), 0)
    assert await store.list_receivers() == []


async def test_the_limit_counts_new_receivers_only(store: Store) -> None:
    await add_tenant(store, "acme")
    for n in range(3):
        await store.put_receiver(receiver(receiver_id=f"r{n}"), 0, limit=3)

    with pytest.raises(Conflict):
        await store.put_receiver(receiver(receiver_id="r3"), 0, limit=3)
    _, created = await store.put_receiver(receiver(receiver_id="r1"), 0, limit=3)

    assert created is False
    assert [r.receiver_id for r in await store.list_receivers("acme")] == ["r0", "r1", "r2"]


async def test_receivers_are_listed_by_tenant_and_id(store: Store) -> None:
    await add_tenant(store, "beta")
    await add_tenant(store, "acme")
    for tenant_id, receiver_id in [("beta", "a"), ("acme", "z"), ("acme", "b")]:
        await store.put_receiver(receiver(tenant_id, receiver_id), 0)

    listed = [(r.tenant_id, r.receiver_id) for r in await store.list_receivers()]

    assert listed == [("acme", "b"), ("acme", "z"), ("beta", "a")]
    assert [r.receiver_id for r in await store.list_receivers("beta")] == ["a"]


# --- the lease ------------------------------------------------------------------------


async def test_one_owner_holds_the_lease_until_it_expires(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)

    first = await claimed(store, "w1")
    assert (first.lease_owner, first.lease_until) == ("w1", NOW + LEASE)
    assert await store.claim_receiver("acme", "rs1", "w2", NOW + 1, NOW + 1 + LEASE) is None
    # The holder extends it.
    again = await store.claim_receiver("acme", "rs1", "w1", NOW + 10, NOW + 10 + LEASE)
    assert again is not None and again.lease_until == NOW + 10 + LEASE
    assert await store.claim_receiver("acme", "rs1", "w2", NOW + LEASE, NOW + 2 * LEASE) is None
    # Expired: another takes it over.
    taken = await store.claim_receiver("acme", "rs1", "w2", NOW + 10 + LEASE, NOW + 99)
    assert taken is not None and taken.lease_owner == "w2"
    assert await store.claim_receiver("acme", "rs1", "w1", NOW + 11 + LEASE, NOW + 99) is None


async def test_of_concurrent_claims_exactly_one_wins(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)

    results = await asyncio.gather(
        *(store.claim_receiver("acme", "rs1", f"w{n}", NOW, NOW + LEASE) for n in range(8))
    )

    winners = [r.lease_owner for r in results if r is not None]
    assert len(winners) == 1
    state = await store.get_receiver_state("acme", "rs1")
    assert state is not None and state.lease_owner == winners[0]


async def test_only_the_lease_holder_records(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store, "w1")

    lost = await store.record_delivery(replace(state, cursor=5), "w2", [attempt(5)], 10)

    assert lost is False
    assert await store.get_receiver_state("acme", "rs1") == state
    assert await store.delivery_log("acme", "rs1", 10) == []
    assert await store.record_delivery(replace(state, cursor=5), "w1", [attempt(5)], 10)
    # No lease needed: poll acknowledgements, admin actions.
    assert await store.record_delivery(replace(state, cursor=6), "", [attempt(6)], 10)
    after = await store.get_receiver_state("acme", "rs1")
    assert after is not None and after.cursor == 6 and after.lease_owner == "w1"


async def test_a_delivery_records_the_whole_state(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store)
    failing = replace(
        state,
        status="paused",
        paused_reason="failing since 86400 s",
        failing_since=NOW - 5,
        attempts=4,
        next_attempt_at=NOW + 60,
        last_error="503 from rs.example",
        delivered=3,
    )

    assert await store.record_delivery(failing, "w1", [attempt(1, "failed", status=503)], 10)

    assert await store.get_receiver_state("acme", "rs1") == failing


async def test_the_cursor_never_moves_back(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store)
    assert await store.record_delivery(replace(state, cursor=10), "w1", [], 10)

    assert await store.record_delivery(replace(state, cursor=4, delivered=1), "w1", [], 10)

    after = await store.get_receiver_state("acme", "rs1")
    assert after is not None and (after.cursor, after.delivered) == (10, 1)


async def test_the_log_keeps_the_latest_entries_newest_first(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store)

    assert await store.record_delivery(state, "w1", [attempt(1), attempt(2)], 3)
    assert await store.record_delivery(state, "w1", [attempt(3, "failed", detail="x")], 3)
    assert await store.record_delivery(state, "w1", [attempt(4), attempt(5)], 3)

    log = await store.delivery_log("acme", "rs1", 50)
    assert [a.event_id for a in log] == [5, 4, 3]
    assert log[2] == attempt(3, "failed", detail="x")
    assert [a.event_id for a in await store.delivery_log("acme", "rs1", 2)] == [5, 4]


async def test_replacing_resumes_a_paused_receiver_and_drops_the_lease(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store, "w1")
    paused = replace(
        state, cursor=3, status="paused", paused_reason="r", failing_since=NOW, attempts=9,
        next_attempt_at=NOW + 600, last_error="e", delivered=3,
    )  # fmt: skip
    assert await store.record_delivery(paused, "w1", [attempt(3, "paused")], 10)

    await store.put_receiver(receiver(updated_at=NOW + 1), 0)

    resumed = await store.get_receiver_state("acme", "rs1")
    assert resumed == ReceiverState("acme", "rs1", cursor=3, delivered=3)
    # The worker that held the lease records nothing more; a new claim is free.
    assert not await store.record_delivery(replace(paused, cursor=4), "w1", [], 10)
    assert (await claimed(store, "w2")).cursor == 3
    assert len(await store.delivery_log("acme", "rs1", 10)) == 1


async def test_replacing_without_resume_leaves_the_state(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store, "w1")
    paused = replace(state, status="paused", paused_reason="r", attempts=2)
    assert await store.record_delivery(paused, "w1", [], 10)

    await store.put_receiver(receiver(authorization_sealed=b"\x05resealed"), 0, resume=False)

    assert await store.get_receiver_state("acme", "rs1") == paused
    stored = await store.get_receiver("acme", "rs1")
    assert stored is not None and stored.authorization_sealed == b"\x05resealed"


# --- isolation and deletion -------------------------------------------------------------


async def test_tenants_have_their_own_receivers(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "beta")
    await store.put_receiver(receiver("acme", url="https://acme.example/"), 1)
    await store.put_receiver(receiver("beta", url="https://beta.example/"), 2)
    state = await claimed(store, "w1")
    assert await store.record_delivery(replace(state, cursor=5), "w1", [attempt(5)], 10)

    beta = await store.get_receiver_state("beta", "rs1")
    assert beta is not None and (beta.cursor, beta.lease_owner) == (2, None)
    assert await store.delivery_log("beta", "rs1", 10) == []
    assert await store.claim_receiver("beta", "rs1", "w2", NOW, NOW + LEASE) is not None
    assert await store.delete_receiver("beta", "rs1")
    acme = await store.get_receiver("acme", "rs1")
    assert acme is not None and acme.url == "https://acme.example/"
    assert len(await store.delivery_log("acme", "rs1", 10)) == 1


async def test_deleting_a_receiver_takes_its_state_and_log(store: Store) -> None:
    await add_tenant(store, "acme")
    await store.put_receiver(receiver(), 0)
    state = await claimed(store)
    assert await store.record_delivery(replace(state, cursor=1), "w1", [attempt(1)], 10)
    before = await store.config_version()

    assert await store.delete_receiver("acme", "rs1") is True

    assert await store.config_version() > before
    assert await store.get_receiver("acme", "rs1") is None
    assert await store.get_receiver_state("acme", "rs1") is None
    assert await store.delivery_log("acme", "rs1", 10) == []
    assert await store.delete_receiver("acme", "rs1") is False
    assert await store.claim_receiver("acme", "rs1", "w1", NOW, NOW + LEASE) is None
    assert not await store.record_delivery(state, "", [attempt(2)], 10)
    # Created again, it starts afresh.
    await store.put_receiver(receiver(), 40)
    assert await store.get_receiver_state("acme", "rs1") == ReceiverState("acme", "rs1", 40)
    assert await store.delivery_log("acme", "rs1", 10) == []


async def test_deleting_the_tenant_takes_its_receivers(store: Store) -> None:
    await add_tenant(store, "acme")
    await add_tenant(store, "beta")
    await store.put_receiver(receiver("beta"), 0)
    await store.put_receiver(receiver(), 0)
    state = await claimed(store)
    assert await store.record_delivery(replace(state, cursor=1), "w1", [attempt(1)], 10)

    assert await store.delete_tenant("acme")

    assert await store.list_receivers("acme") == []
    assert await store.get_receiver_state("acme", "rs1") is None
    assert await store.delivery_log("acme", "rs1", 10) == []
    assert await store.claim_receiver("acme", "rs1", "w1", NOW, NOW + LEASE) is None
    assert [r.tenant_id for r in await store.list_receivers()] == ["beta"]
    # The tenant id, used again, has no receivers.
    await add_tenant(store, "acme")
    assert await store.list_receivers("acme") == []
