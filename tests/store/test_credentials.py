"""Registering and finding credentials; grant records; a subject's clients."""

from __future__ import annotations

import pytest

from app.errors import Conflict
from app.models import Credential, Grant, SubjectClient
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
    revoke_token,
)

BATCH = 10_000


@pytest.fixture
async def acme(store: Store) -> Store:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    return store


def assert_conflict_hides_the_token(error: Conflict, token: str) -> None:
    text = f"{error} {error.description} {error.body()}"
    for secret in (token, h(token).hex(), repr(h(token)), str(h(token))):
        assert secret not in text


def batch(prefix: str, n: int = BATCH) -> list[Credential]:
    return [credential("acme", f"{prefix}{i}", sub=f"user{i % 7}") for i in range(n)]


async def test_credential_round_trip(acme: Store) -> None:
    full = credential(
        "acme",
        "t1",
        RT,
        "app",
        exp=LATER,
        sub="alice",
        grant_id="g1",
        device_session_id="s1",
        scope="openid offline_access",
        iat=NOW,
    )
    bare = Credential("acme", h("t2"), DS, "app", exp=LATER)
    outcome = await acme.register_credentials("acme", [full, bare])
    assert (outcome.registered, outcome.duplicates) == (2, 0)
    assert await acme.find_credential("acme", h("t1")) == full
    assert await acme.find_credential("acme", h("t2")) == bare


async def test_unknown_token_is_none(acme: Store) -> None:
    await acme.register_credentials("acme", [credential("acme", "t1")])
    assert await acme.find_credential("acme", h("t2")) is None
    assert await acme.find_credential("globex", h("t1")) is None


async def test_one_hash_in_two_tenants_is_two_records(acme: Store) -> None:
    in_acme = credential("acme", "t1", AT, "app", sub="alice")
    in_globex = credential("globex", "t1", RT, "other", sub="bob", exp=NOW + 10)
    await acme.register_credentials("acme", [in_acme])
    outcome = await acme.register_credentials("globex", [in_globex])
    assert outcome.registered == 1
    assert await acme.find_credential("acme", h("t1")) == in_acme
    assert await acme.find_credential("globex", h("t1")) == in_globex


async def test_registering_again_is_a_duplicate(acme: Store) -> None:
    first = credential("acme", "t1", sub="alice")
    await acme.register_credentials("acme", [first])
    outcome = await acme.register_credentials("acme", [first, credential("acme", "t2")])
    assert (outcome.registered, outcome.duplicates) == (1, 1)
    assert await acme.find_credential("acme", h("t1")) == first


async def test_repeats_within_a_batch_are_duplicates(acme: Store) -> None:
    one, two = credential("acme", "t1"), credential("acme", "t2")
    outcome = await acme.register_credentials("acme", [one, two, one, one])
    assert (outcome.registered, outcome.duplicates) == (2, 2)


async def test_same_hash_with_other_fields_is_a_conflict(acme: Store) -> None:
    stored = credential("acme", "t1", sub="alice")
    await acme.register_credentials("acme", [stored])
    with pytest.raises(Conflict) as raised:
        await acme.register_credentials("acme", [credential("acme", "t1", sub="mallory")])
    assert_conflict_hides_the_token(raised.value, "t1")
    assert await acme.find_credential("acme", h("t1")) == stored


async def test_repeat_with_other_fields_within_a_batch_is_a_conflict(acme: Store) -> None:
    items = [credential("acme", "t0"), credential("acme", "t1"), credential("acme", "t1", exp=1)]
    with pytest.raises(Conflict) as raised:
        await acme.register_credentials("acme", items)
    assert_conflict_hides_the_token(raised.value, "t1")
    assert await acme.find_credential("acme", h("t0")) is None
    assert await acme.find_credential("acme", h("t1")) is None


async def test_large_batch_registers_all(acme: Store) -> None:
    items = batch("t")
    outcome = await acme.register_credentials("acme", items)
    assert (outcome.registered, outcome.duplicates) == (BATCH, 0)
    for i in (0, 4_999, BATCH - 1):
        assert await acme.find_credential("acme", h(f"t{i}")) == items[i]
    again = await acme.register_credentials("acme", items)
    assert (again.registered, again.duplicates) == (0, BATCH)


async def test_a_clash_in_a_large_batch_registers_nothing(acme: Store) -> None:
    items = batch("t")
    clashing = credential("acme", "t5000", sub="someone else")
    await acme.register_credentials("acme", [clashing])

    with pytest.raises(Conflict):
        await acme.register_credentials("acme", items)

    for i in (0, 4_999, 5_001, BATCH - 1):
        assert await acme.find_credential("acme", h(f"t{i}")) is None
    assert await acme.find_credential("acme", h("t5000")) == clashing
    assert await acme.subject_clients("acme", "user0", NOW) == []


async def test_a_repeat_late_in_a_large_batch_registers_nothing(acme: Store) -> None:
    items = batch("t")
    items[5_000] = credential("acme", "t17", sub="someone else")
    with pytest.raises(Conflict):
        await acme.register_credentials("acme", items)
    for i in (0, 17, BATCH - 1):
        assert await acme.find_credential("acme", h(f"t{i}")) is None


async def test_a_revoked_credential_stays_revoked_when_registered_again(acme: Store) -> None:
    item = credential("acme", "t1")
    await acme.register_credentials("acme", [item])
    assert (await acme.apply_revocation("acme", revoke_token("t1"))).applied

    outcome = await acme.register_credentials("acme", [item])

    assert (outcome.registered, outcome.duplicates) == (0, 1)
    found = await acme.find_credential("acme", h("t1"))
    assert found is not None
    assert (found.revoked_at, found.revoked_cause) == (NOW, "token")


async def test_grant_records(acme: Store) -> None:
    grant = Grant("acme", "g1", "app", "alice", "openid email", NOW)
    await acme.put_grant(grant)
    assert await acme.get_grant("acme", "g1") == grant
    assert await acme.get_grant("acme", "g2") is None
    assert await acme.get_grant("globex", "g1") is None

    replaced = Grant("acme", "g1", "app", "alice", None, NOW + 1)
    await acme.put_grant(replaced)
    assert await acme.get_grant("acme", "g1") == replaced


async def test_subject_clients(acme: Store) -> None:
    await acme.put_grant(Grant("acme", "g1", "web", "alice"))
    await acme.put_grant(Grant("acme", "g2", "web", "alice"))
    await acme.put_grant(Grant("acme", "g3", "cli", "alice"))
    await acme.put_grant(Grant("acme", "g4", "web", "bob"))
    await acme.put_grant(Grant("globex", "g5", "tv", "alice"))
    await acme.register_credentials(
        "acme",
        [
            credential("acme", "a1", client_id="app", sub="alice"),
            credential("acme", "a2", RT, client_id="app", sub="alice"),
            credential("acme", "a3", client_id="cli", sub="alice"),
            credential("acme", "expired", client_id="old", sub="alice", exp=NOW - 1),
            credential("acme", "expires-now", client_id="old", sub="alice", exp=NOW),
            credential("acme", "revoked", client_id="gone", sub="alice"),
            credential("acme", "revoked2", client_id="app", sub="alice"),
            credential("acme", "bob", client_id="bobs", sub="bob"),
            credential("acme", "nobody", client_id="m2m"),
        ],
    )
    await acme.register_credentials(
        "globex", [credential("globex", "x", client_id="tv", sub="alice")]
    )
    for token in ("revoked", "revoked2"):
        assert (await acme.apply_revocation("acme", revoke_token(token))).applied

    assert await acme.subject_clients("acme", "alice", NOW) == [
        SubjectClient("app", credentials=2, grants=0),
        SubjectClient("cli", credentials=1, grants=1),
        SubjectClient("web", credentials=0, grants=2),
    ]
    assert await acme.subject_clients("acme", "alice", NOW - 1) == [
        SubjectClient("app", credentials=2, grants=0),
        SubjectClient("cli", credentials=1, grants=1),
        SubjectClient("old", credentials=1, grants=0),
        SubjectClient("web", credentials=0, grants=2),
    ]
    assert await acme.subject_clients("acme", "carol", NOW) == []
    assert await acme.subject_clients("globex", "alice", NOW) == [
        SubjectClient("tv", credentials=1, grants=1)
    ]
