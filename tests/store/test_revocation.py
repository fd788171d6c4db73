"""apply_revocation: selectors, idempotence, one transaction, tenant isolation."""

from __future__ import annotations

import asyncio
from dataclasses import fields, is_dataclass
from enum import Enum

import pytest

from app.models import (
    ALL_TOKEN_TYPES,
    OAUTH_TOKENS,
    ByClient,
    ByClientSubject,
    ByGrant,
    ByHash,
    BySession,
    DenyEntry,
    EventDraft,
    Grant,
    MarkKind,
    NotBeforeMark,
    RevocationPlan,
    Selector,
)
from app.store.base import Store
from tests.store.records import (
    AT,
    DS,
    LATER,
    NOW,
    RT,
    add_tenant,
    credential,
    h,
    is_revoked,
    revoke_token,
    revoked,
)

WHEN = NOW + 100


@pytest.fixture
async def acme(store: Store) -> Store:
    """Two tenants holding the same tokens (unrelated records)."""
    for tenant_id in ("acme", "globex"):
        await add_tenant(store, tenant_id)
        await store.register_credentials(
            tenant_id,
            [
                credential(tenant_id, "g1-at", AT, "app", sub="alice", grant_id="g1"),
                credential(tenant_id, "g1-rt", RT, "app", sub="alice", grant_id="g1"),
                credential(tenant_id, "g2-at", AT, "app", sub="alice", grant_id="g2"),
                credential(tenant_id, "g3-rt", RT, "app", sub="bob", grant_id="g3"),
                credential(tenant_id, "other-at", AT, "other", sub="alice", grant_id="g4"),
                credential(tenant_id, "ds", DS, "app", sub="alice", device_session_id="s1"),
                credential(tenant_id, "s1-rt", RT, "other", sub="alice", device_session_id="s1"),
                credential(tenant_id, "s1-at", AT, "app", sub="alice", device_session_id="s1"),
                credential(tenant_id, "lone", AT, "app"),
            ],
        )
    return store


ALL = ("g1-at", "g1-rt", "g2-at", "g3-rt", "other-at", "ds", "s1-rt", "s1-at", "lone")


async def revoked_tokens(store: Store, tenant_id: str = "acme") -> set[str]:
    return {t for t in ALL if await is_revoked(store, tenant_id, t)}


def plan(*selectors: Selector, **fields: object) -> RevocationPlan:
    return RevocationPlan(WHEN, "test", selectors=selectors, **fields)  # type: ignore[arg-type]


async def test_by_hash_revokes_that_token(acme: Store) -> None:
    outcome = await acme.apply_revocation("acme", revoke_token("g1-at", cause="token", at=WHEN))
    assert outcome.applied
    assert outcome.count == 1
    assert await revoked_tokens(acme) == {"g1-at"}
    found = await acme.find_credential("acme", h("g1-at"))
    assert found is not None
    assert (found.revoked_at, found.revoked_cause) == (WHEN, "token")


def case_id(value: object) -> str:
    """Like ``repr``, but with sets in sorted order, so that every process (pytest-xdist's
    workers each have their own hash seed) names the cases alike."""
    if isinstance(value, (set, frozenset)):
        return "{" + ",".join(sorted(case_id(v) for v in value)) + "}"
    if isinstance(value, Enum):
        return str(value.value)
    if is_dataclass(value):
        inner = ",".join(case_id(getattr(value, f.name)) for f in fields(value))
        return f"{type(value).__name__}({inner})"
    return str(value)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (ByGrant("g1"), {"g1-at", "g1-rt"}),
        (ByGrant("g1", frozenset({RT})), {"g1-rt"}),
        (ByGrant("g1", frozenset({AT})), {"g1-at"}),
        (ByGrant("g1", frozenset()), set()),
        (ByGrant("nope"), set()),
        (ByClientSubject("app", "alice"), {"g1-at", "g1-rt", "g2-at", "ds", "s1-at"}),
        (ByClientSubject("app", "alice", OAUTH_TOKENS), {"g1-at", "g1-rt", "g2-at", "s1-at"}),
        (ByClientSubject("app", "alice", frozenset({RT})), {"g1-rt"}),
        (ByClientSubject("app", "bob"), {"g3-rt"}),
        (ByClientSubject("other", "bob"), set()),
        (ByClient("app"), {"g1-at", "g1-rt", "g2-at", "g3-rt", "ds", "s1-at", "lone"}),
        (ByClient("other"), {"other-at", "s1-rt"}),
        (BySession("s1"), {"ds", "s1-rt", "s1-at"}),
        (BySession("s1", frozenset({RT})), {"s1-rt"}),
        (BySession("s1", frozenset({RT, DS})), {"s1-rt", "ds"}),
        (BySession("s2"), set()),
    ],
    ids=case_id,
)
async def test_selectors(acme: Store, selector: Selector, expected: set[str]) -> None:
    outcome = await acme.apply_revocation("acme", plan(selector))
    assert outcome.applied
    assert outcome.count == len(expected)
    assert await revoked_tokens(acme) == expected
    assert await revoked_tokens(acme, "globex") == set()


async def test_selectors_combine_and_count_each_credential_once(acme: Store) -> None:
    outcome = await acme.apply_revocation(
        "acme",
        plan(ByHash(h("g1-at")), ByGrant("g1"), ByClientSubject("app", "alice", OAUTH_TOKENS)),
    )
    assert outcome.count == 4
    assert await revoked_tokens(acme) == {"g1-at", "g1-rt", "g2-at", "s1-at"}


async def test_only_live_credentials_are_taken_down_and_counted(acme: Store) -> None:
    await acme.register_credentials(
        "acme",
        [
            credential("acme", "g1-expired", grant_id="g1", exp=WHEN - 1),
            credential("acme", "g1-expiring", grant_id="g1", exp=WHEN),
        ],
    )
    first = await acme.apply_revocation("acme", revoke_token("g1-at", cause="first", at=NOW))
    assert first.count == 1

    outcome = await acme.apply_revocation("acme", plan(ByGrant("g1")))

    assert outcome.count == 1  # g1-rt only
    earlier = await acme.find_credential("acme", h("g1-at"))
    assert earlier is not None
    assert (earlier.revoked_at, earlier.revoked_cause) == (NOW, "first")
    for token in ("g1-expired", "g1-expiring"):
        assert not await is_revoked(acme, "acme", token)


async def test_count_fills_events_without_one(acme: Store) -> None:
    drafts = (
        revoked("grant", WHEN, grant_id="g1"),
        EventDraft("session_ended", "spid", WHEN, device_session_id="s1", count=0),
        EventDraft("revoked", "plugin", WHEN, count=7),
    )
    outcome = await acme.apply_revocation("acme", plan(ByGrant("g1"), events=drafts))
    events = await acme.list_events("acme", 0, 10)
    assert [e.id for e in events] == list(outcome.event_ids)
    assert [(e.type, e.count) for e in events] == [
        ("revoked", 2),
        ("session_ended", 0),
        ("revoked", 7),
    ]


async def test_primary_already_revoked_applies_nothing(acme: Store) -> None:
    first = await acme.apply_revocation("acme", revoke_token("g1-at"))
    assert (first.applied, first.count, len(first.event_ids)) == (True, 1, 1)

    again = RevocationPlan(
        WHEN,
        "grant",
        primary=h("g1-at"),
        selectors=(ByGrant("g1"),),
        delete_grant_ids=("g1",),
        end_sessions=("s9",),
        marks=(NotBeforeMark(MarkKind.GRANT, "g1", WHEN),),
        events=(revoked("grant", WHEN),),
    )
    await acme.put_grant(Grant("acme", "g1", "app", "alice"))
    outcome = await acme.apply_revocation("acme", again)

    assert (outcome.applied, outcome.count, outcome.event_ids) == (False, 0, ())
    assert await revoked_tokens(acme) == {"g1-at"}
    assert len(await acme.list_events("acme", 0, 10)) == 1
    assert await acme.get_grant("acme", "g1") is not None
    assert await acme.ended_session("acme", "s9") is None
    assert await acme.not_before("acme", [(MarkKind.GRANT, "g1")]) is None


async def test_unknown_primary_applies_nothing(acme: Store) -> None:
    unknown = RevocationPlan(
        WHEN, "grant", primary=h("nope"), selectors=(ByGrant("g1"),), events=(revoked(),)
    )
    outcome = await acme.apply_revocation("acme", unknown)
    assert not outcome.applied
    assert await revoked_tokens(acme) == set()
    assert await acme.list_events("acme", 0, 10) == []


async def test_primary_of_another_tenant_applies_nothing(acme: Store) -> None:
    await acme.register_credentials("globex", [credential("globex", "only-globex")])
    outcome = await acme.apply_revocation("acme", revoke_token("only-globex"))
    assert not outcome.applied
    assert not await is_revoked(acme, "globex", "only-globex")


async def test_a_plan_without_primary_always_applies(acme: Store) -> None:
    revoke_all = plan(ByClient("other"), marks=(NotBeforeMark(MarkKind.CLIENT, "other", WHEN),))
    assert (await acme.apply_revocation("acme", revoke_all)).count == 2
    again = await acme.apply_revocation("acme", revoke_all)
    assert (again.applied, again.count) == (True, 0)


async def test_concurrent_revocations_of_one_token_apply_once(acme: Store) -> None:
    outcomes = await asyncio.gather(
        *(acme.apply_revocation("acme", revoke_token("g1-rt")) for _ in range(50))
    )
    applied = [o for o in outcomes if o.applied]
    assert len(applied) == 1
    assert applied[0].count == 1
    events = await acme.list_events("acme", 0, 100)
    assert [e.id for e in events] == list(applied[0].event_ids)


async def test_revoking_in_one_tenant_leaves_the_other(acme: Store) -> None:
    await acme.apply_revocation("acme", plan(ByClient("app"), ByClient("other")))
    assert await revoked_tokens(acme) == set(ALL)
    assert await revoked_tokens(acme, "globex") == set()
    assert await acme.list_events("globex", 0, 10) == []
    outcome = await acme.apply_revocation("globex", revoke_token("g1-at"))
    assert (outcome.applied, outcome.count) == (True, 1)


async def test_grant_records_are_deleted(acme: Store) -> None:
    grants = [
        Grant("acme", "g1", "app", "alice"),
        Grant("acme", "g2", "app", "alice"),
        Grant("acme", "g3", "app", "bob"),
        Grant("acme", "g4", "other", "alice"),
        Grant("acme", "g5", "web", "carol"),
        Grant("globex", "g1", "app", "alice"),
    ]
    for grant in grants:
        await acme.put_grant(grant)

    await acme.apply_revocation(
        "acme", plan(delete_grants_of=(("app", "alice"),), delete_grant_ids=("g5", "nope"))
    )

    left = {g.grant_id for g in grants[:5] if await acme.get_grant("acme", g.grant_id)}
    assert left == {"g3", "g4"}
    assert await acme.get_grant("globex", "g1") == grants[5]


async def test_ended_sessions_keep_the_first_end(acme: Store) -> None:
    assert await acme.ended_session("acme", "s1") is None
    await acme.apply_revocation("acme", plan(end_sessions=("s1",)))
    later = RevocationPlan(WHEN + 50, "spid", end_sessions=("s1", "s2"))
    await acme.apply_revocation("acme", later)
    assert await acme.ended_session("acme", "s1") == WHEN
    assert await acme.ended_session("acme", "s2") == WHEN + 50
    assert await acme.ended_session("globex", "s1") is None


async def test_a_logout_ends_the_session_and_not_its_tokens(acme: Store) -> None:
    """An SPID logout ends the session (its device secret with it) and keeps its tokens
    valid, so a Global Token Revocation still finds it among the subject's sessions; an
    end that takes the tokens (a device secret's revocation) is never undone."""
    assert "s1" in await acme.subject_sessions("acme", "alice", WHEN)
    await acme.apply_revocation("acme", plan(end_sessions=("s1",), session_tokens_end=False))
    assert await acme.ended_session("acme", "s1") == WHEN
    assert await acme.ended_session("acme", "s1", tokens=True) is None
    assert "s1" in await acme.subject_sessions("acme", "alice", WHEN)

    device_secret = RevocationPlan(WHEN + 50, "device_secret", end_sessions=("s1",))
    await acme.apply_revocation("acme", device_secret)
    assert await acme.ended_session("acme", "s1", tokens=True) == WHEN  # the first end's
    assert "s1" not in await acme.subject_sessions("acme", "alice", WHEN)

    logout = RevocationPlan(WHEN + 60, "spid", end_sessions=("s1",), session_tokens_end=False)
    await acme.apply_revocation("acme", logout)
    assert await acme.ended_session("acme", "s1", tokens=True) == WHEN


async def test_not_before_is_the_latest_of_the_requested_marks(acme: Store) -> None:
    marks = (
        NotBeforeMark(MarkKind.CLIENT, "app", WHEN),
        NotBeforeMark(MarkKind.CLIENT_SUBJECT, "app\0alice", WHEN + 20),
        NotBeforeMark(MarkKind.GRANT, "g1", WHEN + 10),
    )
    await acme.apply_revocation("acme", plan(marks=marks))

    client = (MarkKind.CLIENT, "app")
    pair = (MarkKind.CLIENT_SUBJECT, "app\0alice")
    grant = (MarkKind.GRANT, "g1")
    assert await acme.not_before("acme", [client]) == WHEN
    assert await acme.not_before("acme", [client, grant]) == WHEN + 10
    assert await acme.not_before("acme", [client, pair, grant]) == WHEN + 20
    assert await acme.not_before("acme", [(MarkKind.GRANT, "app")]) is None
    assert await acme.not_before("acme", [(MarkKind.CLIENT, "g1"), grant]) == WHEN + 10
    assert await acme.not_before("acme", []) is None
    assert await acme.not_before("globex", [client, pair, grant]) is None


async def test_a_mark_only_moves_forward(acme: Store) -> None:
    key = (MarkKind.CLIENT, "app")
    await acme.apply_revocation("acme", plan(marks=(NotBeforeMark(key[0], key[1], WHEN),)))
    await acme.apply_revocation("acme", plan(marks=(NotBeforeMark(key[0], key[1], NOW),)))
    assert await acme.not_before("acme", [key]) == WHEN
    await acme.apply_revocation("acme", plan(marks=(NotBeforeMark(key[0], key[1], WHEN + 1),)))
    assert await acme.not_before("acme", [key]) == WHEN + 1


async def test_deny_entry_applies_once(acme: Store) -> None:
    jwt = RevocationPlan(
        WHEN, "token", primary_deny=DenyEntry("jti-1", LATER), events=(revoked("token", WHEN),)
    )
    first = await acme.apply_revocation("acme", jwt)
    # The denied JWT is the one credential it took down.
    assert (first.applied, first.count, len(first.event_ids)) == (True, 1, 1)
    assert await acme.is_denied("acme", "jti-1")
    assert not await acme.is_denied("acme", "jti-2")
    assert not await acme.is_denied("globex", "jti-1")

    again = await acme.apply_revocation("acme", jwt)
    assert (again.applied, again.event_ids) == (False, ())
    assert len(await acme.list_events("acme", 0, 10)) == 1

    assert (await acme.apply_revocation("globex", jwt)).applied


async def test_concurrent_denials_of_one_jwt_apply_once(acme: Store) -> None:
    jwt = RevocationPlan(
        WHEN, "grant", primary_deny=DenyEntry("jti-1", LATER), events=(revoked("grant", WHEN),)
    )
    outcomes = await asyncio.gather(*(acme.apply_revocation("acme", jwt) for _ in range(20)))
    assert sum(o.applied for o in outcomes) == 1
    assert len(await acme.list_events("acme", 0, 100)) == 1


async def test_a_whole_plan(acme: Store) -> None:
    """Every part of a plan lands together."""
    await acme.put_grant(Grant("acme", "g1", "app", "alice"))
    full = RevocationPlan(
        WHEN,
        "subject",
        primary=h("g1-at"),
        selectors=(ByClientSubject("app", "alice", ALL_TOKEN_TYPES),),
        delete_grants_of=(("app", "alice"),),
        end_sessions=("s1",),
        marks=(NotBeforeMark(MarkKind.CLIENT_SUBJECT, "app\0alice", WHEN),),
        events=(revoked("subject", WHEN, client_id="app", sub="alice"),),
    )
    outcome = await acme.apply_revocation("acme", full)
    assert (outcome.applied, outcome.count) == (True, 5)
    assert await revoked_tokens(acme) == {"g1-at", "g1-rt", "g2-at", "ds", "s1-at"}
    assert await acme.get_grant("acme", "g1") is None
    assert await acme.ended_session("acme", "s1") == WHEN
    assert await acme.not_before("acme", [(MarkKind.CLIENT_SUBJECT, "app\0alice")]) == WHEN
    [event] = await acme.list_events("acme", 0, 10)
    assert (event.id, event.count, event.cause, event.sub) == (
        outcome.event_ids[0],
        5,
        "subject",
        "alice",
    )
