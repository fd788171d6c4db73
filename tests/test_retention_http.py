"""Retention seen through the HTTP interface (``retention.*`` settings, ``app.retention``):
housekeeping drops old events, not-before marks and ended sessions, and no token that
was inactive becomes active again. Time moves by the service clock, never by sleeping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.housekeeping import purge_retained
from app.services import Services
from tests.support.issuer_keys import access_claims, ec_key
from tests.support.world import OPERATOR, World, make_tenant, make_world

DAY = 86_400
HOUR = 3_600
KEY = ec_key()


@dataclass
class Clock:
    """The service clock, frozen until a test moves it."""

    now: int

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock(int(time.time()))
    services.clock = clock
    return clock


def opaque(token: str, exp: int, **fields: Any) -> dict[str, Any]:
    return {"token": token, "type": "access_token", "client_id": "app", "exp": exp, **fields}


async def jwt_world(http: httpx.AsyncClient, **settings: Any) -> World:
    world = await make_world(http, **settings)
    await world.tenant.patch({"jwt_access_tokens": {"jwks": KEY.jwks()}})
    return world


def jwt(world: World, iat: int | None, exp: int) -> str:
    return KEY.sign(access_claims(world.tenant.issuer, iat=iat, exp=exp))


# --- settings ----------------------------------------------------------------------------


async def test_retention_settings_have_defaults(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme")
    r = await http.get("/admin/v1/tenants/acme", headers=OPERATOR)
    assert r.json()["settings"]["retention"] == {
        "events_days": 90,
        "max_token_lifetime_s": 31_536_000,
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"events_days": "90"}, "retention.events_days"),
        ({"events_days": -1}, "retention.events_days"),
        ({"events_days": 1.5}, "retention.events_days"),
        ({"max_token_lifetime_s": True}, "retention.max_token_lifetime_s"),
        ({"max_token_lifetime_s": 10**12}, "retention.max_token_lifetime_s"),
        ({"marks_days": 1}, "retention.marks_days"),
    ],
)
async def test_bad_retention_settings_are_400_naming_the_key(
    http: httpx.AsyncClient, settings: dict[str, Any], field: str
) -> None:
    await make_tenant(http, "acme", retention={"events_days": 7})
    r = await http.patch("/admin/v1/tenants/acme", json={"retention": settings}, headers=OPERATOR)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert r.json()["field"] == field
    got = await http.get("/admin/v1/tenants/acme", headers=OPERATOR)
    assert got.json()["settings"]["retention"]["events_days"] == 7  # nothing changed


# --- events -------------------------------------------------------------------------------


async def test_events_past_retention_leave_the_feed_and_newer_ones_stay(
    http: httpx.AsyncClient, services: Services, clock: Clock
) -> None:
    start = clock.now
    acme = await make_world(http, "acme", retention={"events_days": 30})
    keep = await make_world(http, "keep", retention={"events_days": 0})
    for world in (acme, keep):
        await world.tenant.register(opaque("a", start + 400 * DAY), opaque("b", start + 400 * DAY))
        assert (await world.tenant.revoke("a", auth=world.app)).status_code == 200
    clock.now = start + 20 * DAY
    for world in (acme, keep):
        assert (await world.tenant.revoke("b", auth=world.app)).status_code == 200

    clock.now = start + 30 * DAY  # the first events are 30 days old, not older
    assert (await purge_retained(services))["events"] == 0
    clock.now = start + 30 * DAY + 1
    assert (await purge_retained(services))["events"] == 1

    assert [e["id"] for e in await acme.tenant.events()] == ["2"]
    assert [e["id"] for e in await keep.tenant.events()] == ["1", "2"]  # 0: for ever
    # The feed goes on from where it was: ids are never reused.
    await acme.tenant.register(opaque("c", start + 400 * DAY))
    assert (await acme.tenant.revoke("c", auth=acme.app)).status_code == 200
    assert [e["id"] for e in await acme.tenant.events()] == ["2", "3"]


# --- JWTs: the lifetime bound, and not-before marks ---------------------------------------


async def test_a_jwt_that_outlives_the_tenants_bound_is_not_active(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    world = await jwt_world(http, retention={"max_token_lifetime_s": DAY})
    now = clock.now
    at_the_bound = jwt(world, iat=now - 60, exp=now - 60 + DAY)
    too_long = jwt(world, iat=now - 60, exp=now + DAY)
    undated_near = jwt(world, iat=None, exp=now + DAY)
    undated_far = jwt(world, iat=None, exp=now + DAY + 1)
    assert await world.active(at_the_bound)
    assert await world.active(undated_near)
    assert not await world.active(too_long)
    assert not await world.active(undated_far)
    # Refused as unknown: revoking it is 200 and records nothing.
    assert (await world.tenant.revoke(too_long, auth=world.app)).status_code == 200
    assert await world.tenant.events() == []
    # 0 lifts the bound (and keeps marks for ever).
    await world.tenant.patch({"retention": {"max_token_lifetime_s": 0}})
    assert await world.active(too_long)
    assert await world.active(undated_far)


async def test_a_mark_is_dropped_only_once_no_token_it_covers_can_be_live(
    http: httpx.AsyncClient, services: Services, clock: Clock
) -> None:
    world = await jwt_world(
        http, revocation={"cascade": "subject"}, retention={"max_token_lifetime_s": DAY}
    )
    start = clock.now
    margin = services.config.credential_retention_s
    longest = jwt(world, iat=start - 60, exp=start - 60 + DAY)  # the longest allowed
    await world.tenant.register(opaque("opaque", start + HOUR, sub="alice"))
    # Under `subject`, revoking the opaque token sets a mark for (app, alice) at `start`.
    assert (await world.tenant.revoke("opaque", auth=world.app)).status_code == 200
    assert not await world.active(longest)

    for now in (start - 60 + DAY - 1, start + DAY + margin):
        clock.now = now
        assert (await purge_retained(services))["not_before_marks"] == 0
    clock.now = start - 60 + DAY - 1
    assert not await world.active(longest)  # still live, still under the kept mark

    clock.now = start + DAY + margin + 1
    assert (await purge_retained(services))["not_before_marks"] == 1
    # Whatever the mark covered (issued at or before `start`) is expired by now, or
    # lives longer than the bound and is refused: nothing comes back.
    now = clock.now
    assert not await world.active(longest)
    assert not await world.active(jwt(world, iat=start - 60, exp=now + HOUR))
    assert not await world.active(jwt(world, iat=None, exp=now + DAY + 1))
    # A JWT issued after the mark was never under it.
    assert await world.active(jwt(world, iat=now - 60, exp=now + HOUR))


async def test_a_revoked_jwt_stays_inactive_after_housekeeping(
    http: httpx.AsyncClient, services: Services, clock: Clock
) -> None:
    world = await jwt_world(http, retention={"max_token_lifetime_s": DAY, "events_days": 1})
    start = clock.now
    token = jwt(world, iat=start - 60, exp=start + HOUR)
    assert (await world.tenant.revoke(token, auth=world.app)).status_code == 200
    for step in (HOUR - 1, 2 * DAY, 2 * DAY + services.config.credential_retention_s):
        clock.now = start + step
        await purge_retained(services)
        assert not await world.active(token)


# --- ended sessions --------------------------------------------------------------------


async def test_an_ended_session_is_kept_while_a_token_of_it_could_be_presented(
    http: httpx.AsyncClient, services: Services, clock: Clock
) -> None:
    world = await make_world(http, retention={"max_token_lifetime_s": DAY})
    start = clock.now
    secret = {"token": "ds", "type": "device_secret", "client_id": "app"}
    await world.tenant.register({**secret, "device_session_id": "s1", "exp": start + 30 * DAY})
    assert (await world.tenant.revoke("ds", auth=world.app)).status_code == 200  # ends s1
    # A refresh token of the ended session, registered late, is never active.
    late = opaque("rt-late", start + 10 * DAY, type="refresh_token", device_session_id="s1")
    await world.tenant.register(late)
    assert not await world.active("rt-late")

    clock.now = start + 5 * DAY  # past the bound and the margin, but rt-late is live
    assert (await purge_retained(services))["ended_sessions"] == 0
    assert not await world.active("rt-late")

    clock.now = start + 10 * DAY  # rt-late has expired: the session's end can go
    assert (await purge_retained(services))["ended_sessions"] == 1
    assert not await world.active("rt-late")
