"""The retention horizon seen through the HTTP interface (``app.store.late_registration``):
a credential registered after housekeeping dropped the not-before mark that would have
taken it is not active; one issued after that mark is; a tenant whose marks were never
purged registers as before. Time moves by the service clock, never by sleeping.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from app.housekeeping import purge_retained
from app.services import Services
from tests.support.world import make_world

DAY = 86_400
HOUR = 3_600


def opaque(token: str, iat: int, exp: int) -> dict[str, Any]:
    return {
        "token": token,
        "type": "access_token",
        "client_id": "app",
        "sub": "alice",
        "iat": iat,
        "exp": exp,
    }


async def test_a_late_credential_under_a_purged_mark_stays_inactive(
    http: httpx.AsyncClient, services: Services
) -> None:
    start = int(time.time())
    services.clock = lambda: start
    settings: dict[str, Any] = {
        "revocation": {"cascade": "subject"},
        "retention": {"max_token_lifetime_s": DAY},
    }
    acme = await make_world(http, "acme", **settings)
    keep = await make_world(http, "keep", revocation={"cascade": "subject"})  # marks kept
    for world in (acme, keep):
        await world.tenant.register(opaque("first", start - 60, start + HOUR))
        # Under `subject`, this sets a mark for (app, alice) at `start`.
        assert (await world.tenant.revoke("first", auth=world.app)).status_code == 200
        # Issued before the revocation, registered only after it: taken by the mark.
        await world.tenant.register(opaque("early", start - 60, start + 30 * DAY))
        assert not await world.active("early")

    now = start + DAY + services.config.credential_retention_s + 1
    services.clock = lambda: now
    assert (await purge_retained(services))["not_before_marks"] == 1  # acme's only

    for world in (acme, keep):
        # Issued before the revocation, with a lifetime over the tenant's bound,
        # registered after its mark was dropped: it would have been taken.
        await world.tenant.register(opaque("late", start - 60, now + HOUR))
        # Issued after the mark: never under it.
        await world.tenant.register(opaque("fresh", now - 60, now + HOUR))
        assert await world.active("fresh")
        assert not await world.active("early")
    assert not await acme.active("late")
    assert not await keep.active("late")  # its mark is still there

    # Where the mark is kept the late one is taken by it; the horizon applies only where
    # marks were purged: a tenant that never purged one registers as before.
    await keep.tenant.register(opaque("unmarked", start - 60, now + HOUR) | {"sub": "bob"})
    assert await keep.active("unmarked")
    await acme.tenant.register(opaque("unmarked", start - 60, now + HOUR) | {"sub": "bob"})
    assert not await acme.active("unmarked")
