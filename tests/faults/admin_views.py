"""What a tenant holds, read through the admin API (live credentials of a subject, the
whole event feed) and introspection, and a ``make_world`` tenant found again after a
restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from tests.support.world import OPERATOR, SECRET, Tenant, World, basic

AT_ONCE = 8
"""Requests in flight at once when reading many things."""


async def live_credentials(http: httpx.AsyncClient, tenant_id: str, sub: str) -> int:
    """Credentials of ``sub`` neither revoked nor expired (every client's)."""
    r = await http.get(
        f"/admin/v1/tenants/{tenant_id}/subjects/{quote(sub, safe='')}/clients", headers=OPERATOR
    )
    assert r.status_code == 200, r.text
    return sum(entry["credentials"] for entry in r.json()["clients"])


async def live_by_subject(
    http: httpx.AsyncClient, tenant_id: str, subs: Iterable[str]
) -> dict[str, int]:
    """``live_credentials`` of each subject, a few requests at a time."""
    at_once = asyncio.Semaphore(AT_ONCE)

    async def one(sub: str) -> tuple[str, int]:
        async with at_once:
            return sub, await live_credentials(http, tenant_id, sub)

    return dict(await asyncio.gather(*(one(sub) for sub in subs)))


async def all_events(http: httpx.AsyncClient, tenant_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = "0"
    while True:
        r = await http.get(
            f"/admin/v1/tenants/{tenant_id}/events",
            params={"after": after, "limit": 1000},
            headers=OPERATOR,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        if not page["events"]:
            return events
        events += page["events"]
        after = page["next"]


def reattach(http: httpx.AsyncClient, tenant_id: str) -> World:
    """The ``make_world`` tenant ``tenant_id``, already there, through ``http``."""
    tenant = Tenant(http, tenant_id, f"https://auth.example.com/t/{tenant_id}")
    return World(tenant, basic("rs", SECRET), basic("app", SECRET), basic("other", SECRET))


async def active(world: World, tokens: Iterable[str]) -> dict[str, bool]:
    """Introspection's ``active`` for each token, a few requests at a time."""
    at_once = asyncio.Semaphore(AT_ONCE)

    async def one(token: str) -> tuple[str, bool]:
        async with at_once:
            return token, await world.active(token)

    return dict(await asyncio.gather(*(one(token) for token in tokens)))
