"""The retention horizon (``Store.retention_horizon``, ``app.store.late_registration``):
a credential registered after the not-before mark that would have covered it was purged
is stored revoked when it was issued before the purge's cut-off and has not expired; a
tenant that never purged anything registers as before."""

from __future__ import annotations

import pytest

from app.errors import StoreUnavailable
from app.models import Credential, MarkKind, NotBeforeMark, RevocationPlan
from app.store.base import Store
from app.store.late_registration import BEYOND_HORIZON
from tests.store.records import NOW, RT, add_tenant, credential, h

FAR = 4_000_000_000
"""An ``exp`` still ahead: the store compares ``exp`` with the real time."""

CUT = NOW - 50
"""The cut-off of the purges below."""


async def mark(store: Store, tenant_id: str, key: str, at: int) -> None:
    plan = RevocationPlan(at, "grant", marks=(NotBeforeMark(MarkKind.CLIENT, key, at),))
    assert (await store.apply_revocation(tenant_id, plan)).applied


async def purged(store: Store, tenant_id: str = "acme") -> Store:
    """The tenant's client mark for ``app``, set at NOW - 100, purged with ``CUT``."""
    await mark(store, tenant_id, "app", NOW - 100)
    assert await store.purge_marks(tenant_id, CUT, 10) == 1
    assert await store.not_before(tenant_id, [(MarkKind.CLIENT, "app")]) is None
    return store


async def stored(store: Store, tenant_id: str, token: str) -> Credential:
    found = await store.find_credential(tenant_id, h(token))
    assert found is not None
    return found


@pytest.fixture
async def two(store: Store) -> Store:
    await add_tenant(store, "acme")
    await add_tenant(store, "globex")
    return store


async def test_a_late_credential_issued_before_the_horizon_is_stored_revoked(two: Store) -> None:
    await purged(two)
    assert await two.retention_horizon("acme") == CUT
    await two.register_credentials(
        "acme",
        [
            credential("acme", "covered", iat=NOW - 200, exp=FAR),
            credential("acme", "just-before", RT, iat=CUT - 1, exp=FAR),
            credential("acme", "at-the-horizon", iat=CUT, exp=FAR),
            credential("acme", "after", iat=NOW, exp=FAR),
            credential("acme", "undated", iat=None, exp=FAR),
            credential("acme", "expired", iat=NOW - 200, exp=NOW),
        ],
    )
    for token in ("covered", "just-before"):
        found = await stored(two, "acme", token)
        assert (found.revoked_at, found.revoked_cause) == (CUT, BEYOND_HORIZON)
    # Issued at or after the cut-off: no purged mark covered it. Without `iat` it cannot
    # be placed before it; an expired one is inactive either way and is left as it is.
    for token in ("at-the-horizon", "after", "undated", "expired"):
        assert (await stored(two, "acme", token)).revoked_at is None


async def test_a_mark_still_kept_decides_first(two: Store) -> None:
    await purged(two)
    await mark(two, "acme", "app", NOW - 10)
    await two.register_credentials("acme", [credential("acme", "t", iat=NOW - 200, exp=FAR)])
    found = await stored(two, "acme", "t")
    assert (found.revoked_at, found.revoked_cause) == (NOW - 10, "not_before")


async def test_a_tenant_that_never_purged_a_mark_has_no_horizon(two: Store) -> None:
    await purged(two, "acme")
    await mark(two, "globex", "other", NOW - 10)  # newer than the cut-off: kept
    assert await two.purge_marks("globex", CUT, 10) == 0
    assert await two.retention_horizon("globex") is None
    await two.register_credentials("globex", [credential("globex", "t", iat=NOW - 200, exp=FAR)])
    assert (await stored(two, "globex", "t")).revoked_at is None


async def test_the_horizon_only_moves_forward(two: Store) -> None:
    await purged(two)
    await mark(two, "acme", "other", NOW - 300)
    assert await two.purge_marks("acme", NOW - 200, 10) == 1
    assert await two.retention_horizon("acme") == CUT
    await mark(two, "acme", "third", NOW - 40)
    assert await two.purge_marks("acme", NOW - 30, 10) == 1
    assert await two.retention_horizon("acme") == NOW - 30


async def test_purging_ended_sessions_advances_it_too(two: Store) -> None:
    """A late credential of a session whose end was purged was issued before that end."""
    plan = RevocationPlan(NOW - 100, "spid", end_sessions=("s1",))
    assert (await two.apply_revocation("acme", plan)).applied
    assert await two.purge_ended_sessions("acme", CUT, NOW, 10) == 1
    assert await two.retention_horizon("acme") == CUT
    late = credential("acme", "rt", RT, device_session_id="s1", iat=NOW - 200, exp=FAR)
    await two.register_credentials("acme", [late])
    assert (await stored(two, "acme", "rt")).revoked_cause == BEYOND_HORIZON


async def test_a_purge_during_the_tenants_deletion_leaves_no_horizon_behind(
    two: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await mark(two, "acme", "app", NOW - 100)

    async def stopped(tenant_id: str) -> None:  # the process died after the first step
        raise StoreUnavailable("stopped")

    monkeypatch.setattr(two, "_delete_tenant_data", stopped)
    with pytest.raises(StoreUnavailable):
        await two.delete_tenant("acme")
    monkeypatch.undo()
    # Housekeeping still purges the deleted tenant's mark, but sets no horizon for it.
    assert await two.purge_marks("acme", CUT, 10) == 1
    assert await two.finish_deletions() == 1
    await add_tenant(two, "acme")
    assert await two.retention_horizon("acme") is None
    await two.register_credentials("acme", [credential("acme", "t", iat=NOW - 200, exp=FAR)])
    assert (await stored(two, "acme", "t")).revoked_at is None
