"""The tenant directory: routing cost flat in the number of tenants, and reloads of the
tenants that changed only (``Store.config_changes_since``), on both stores."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from app.directory import Directory
from app.errors import StoreUnavailable
from app.models import Tenant
from app.store.base import Store
from app.types import TenantId
from tests.store.backends import BACKENDS
from tests.store.records import client, tenant
from tests.store.test_assertion_ids import second_instance
from tests.store.test_config_changes import caught_up, eventually_named

ORIGIN = "https://idp.example.com"


def hosted(tenant_id: str, path: str | None = None) -> Tenant:
    """A tenant whose issuer is a path on the shared ``ORIGIN``."""
    return tenant(
        tenant_id, settings={"issuer": f"{ORIGIN}{f'/t/{tenant_id}' if path is None else path}"}
    )


async def put(store: Store, record: Tenant) -> None:
    await store.put_tenant(record, [record.settings["issuer"]])


# --- routing cost --------------------------------------------------------------------------


class Fixed:
    """A store holding ``tenants`` and nothing else, for routing only."""

    def __init__(self, tenants: list[Tenant]) -> None:
        self.tenants = tenants

    async def config_version(self) -> int:
        return 1

    async def list_tenants(self) -> list[Tenant]:
        return self.tenants


async def directory_of(count: int) -> Directory:
    """``count`` tenants on one origin, one at the root and one nested deeper."""
    tenants = [hosted(f"t{n}") for n in range(count)]
    tenants += [hosted("root", ""), hosted("deep", "/t/t5/eu/west")]
    directory = Directory(Fixed(tenants))  # type: ignore[arg-type]
    await directory.refresh()
    return directory


def opcodes(call: Callable[[], Any]) -> int:
    """Python bytecode instructions executed by ``call()``: a loop over entries shows."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        count += event == "opcode"
        return trace

    previous = sys.gettrace()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


LOOKUPS: dict[str, Callable[[Directory], object]] = {
    "url": lambda d: d.by_url("https", "idp.example.com", "/t/t5/token/revoke"),
    "nested_url": lambda d: d.by_url("https", "idp.example.com", "/t/t5/eu/west/token/revoke"),
    "root_url": lambda d: d.by_url("https", "idp.example.com", "/x/token/revoke"),
    "hostile_url": lambda d: d.by_url("https", "idp.example.com", "/t" * 1000),
    "unknown_origin": lambda d: d.by_url("https", "other.example.com", "/t/t5/token/revoke"),
    "tenant_id": lambda d: d.tenant(TenantId("t5")),
    "issuer": lambda d: d.by_issuer(f"{ORIGIN}/t/t5"),
}


@pytest.mark.parametrize("lookup", list(LOOKUPS))
async def test_resolving_a_tenant_costs_the_same_among_10_or_10000(lookup: str) -> None:
    few, many = await directory_of(10), await directory_of(10_000)
    resolve = LOOKUPS[lookup]
    assert resolve(few) == resolve(many)  # and the memoised issuer parsing is warm
    assert opcodes(lambda: resolve(many)) == opcodes(lambda: resolve(few))


async def test_url_routing_keeps_its_semantics() -> None:
    directory = await directory_of(10)

    def route(path: str) -> tuple[str, str] | None:
        found = directory.by_url("https", "IDP.example.com:443", path)
        return None if found is None else (found[0].tenant_id, found[1])

    assert route("/t/t5/token/revoke") == ("t5", "/token/revoke")
    assert route("/t/t5") == ("t5", "/")
    assert route("/t/t5/eu/west/token/revoke") == ("deep", "/token/revoke")
    assert route("/t/t5/eu/token/revoke") == ("t5", "/eu/token/revoke")
    assert route("/t/t55/token/revoke") == ("root", "/t/t55/token/revoke")  # whole segments
    assert route("/t/t5//token") == ("t5", "//token")
    assert route("") == ("root", "/")
    assert route("/" + "/t" * 1000) == ("root", "/" + "/t" * 1000)
    assert directory.by_url("https", "other.example.com", "/t/t5") is None


# --- reloads proportional to the change ----------------------------------------------------


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with BACKENDS[request.param](tmp_path) as opened:
        yield opened


class Listings:
    """Counts ``list_tenants`` calls on a store (full reloads). ``held``: each call sets
    ``started`` and waits for ``released``; the calls numbered in ``fail`` (from 1) then
    raise ``StoreUnavailable``, as a listing that timed out."""

    def __init__(
        self,
        store: Store,
        monkeypatch: pytest.MonkeyPatch,
        *,
        held: bool = False,
        fail: frozenset[int] = frozenset(),
    ) -> None:
        self.calls = 0
        self.started, self.released = asyncio.Event(), asyncio.Event()
        if not held:
            self.released.set()
        original = store.list_tenants

        async def counted() -> list[Tenant]:
            self.calls += 1
            call = self.calls
            self.started.set()
            await self.released.wait()
            if call in fail:
                raise StoreUnavailable("the listing timed out")
            return await original()

        monkeypatch.setattr(store, "list_tenants", counted)


def names_no_change(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store cannot say which tenants changed (``config_changes_since`` is None)."""

    async def unknown(version: int) -> None:
        return None

    monkeypatch.setattr(store, "config_changes_since", unknown)


async def test_a_change_to_one_tenant_keeps_the_others_cached(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tenant_id in ("acme", "globex"):
        await put(store, hosted(tenant_id))
        await store.put_client(client(tenant_id))
    await caught_up(store)
    directory = Directory(store)
    await directory.refresh()
    acme_client = await directory.client(TenantId("acme"), "app")
    globex_client = await directory.client(TenantId("globex"), "app")
    globex_version = directory.tenant_version(TenantId("globex"))
    listings = Listings(store, monkeypatch)

    await store.put_client(client("acme", enabled=False))
    await put(store, hosted("acme", "/moved/acme"))
    await directory.refresh()

    assert listings.calls == 0
    assert await directory.client(TenantId("globex"), "app") is globex_client
    assert directory.tenant_version(TenantId("globex")) == globex_version
    changed = await directory.client(TenantId("acme"), "app")
    assert changed is not acme_client
    assert changed is not None and not changed.enabled
    moved = directory.by_url("https", "idp.example.com", "/moved/acme/token/revoke")
    assert moved is not None and moved[0].tenant_id == "acme"
    old = directory.by_url("https", "idp.example.com", "/t/acme/token/revoke")
    assert old is None
    assert directory.by_issuer(f"{ORIGIN}/t/acme") is None


async def test_a_tenant_deleted_by_another_instance_stops_resolving(store: Store) -> None:
    await put(store, hosted("acme"))
    await put(store, hosted("globex"))
    directory = Directory(store)
    await directory.refresh()
    before = await store.config_version()
    async with second_instance(store) as other:
        await other.delete_tenant("acme")
        await eventually_named(store, before, {"acme"})
    await directory.refresh()
    assert directory.tenant(TenantId("acme")) is None
    assert directory.by_issuer(f"{ORIGIN}/t/acme") is None
    assert directory.by_url("https", "idp.example.com", "/t/acme/token/revoke") is None
    assert [t.tenant_id for t in directory.tenants()] == ["globex"]


async def test_when_the_store_cannot_name_the_changes_everything_reloads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, hosted("acme"))
    await store.put_client(client("acme"))
    directory = Directory(store)
    await directory.refresh()
    cached = await directory.client(TenantId("acme"), "app")
    listings = Listings(store, monkeypatch)

    names_no_change(store, monkeypatch)
    await put(store, hosted("globex"))
    await refreshed(directory)

    assert listings.calls == 1
    assert directory.tenant(TenantId("globex")) is not None
    assert await directory.client(TenantId("acme"), "app") is not cached


async def refreshed(directory: Directory) -> None:
    """``refresh()``, and the full reload it left running behind requests, if any."""
    await directory.refresh()
    if directory.reloading is not None:
        await asyncio.wait([directory.reloading])


async def test_a_full_reload_reparses_only_the_tenants_whose_record_changed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB's periodic reload reads every tenant: unchanged ones keep their parsed view
    (parsing 10,000 tenants' settings stalled the event loop for half a second)."""
    for tenant_id in ("acme", "globex"):
        await put(store, hosted(tenant_id))
    directory = Directory(store)
    await directory.refresh()
    acme, globex = directory.tenant(TenantId("acme")), directory.tenant(TenantId("globex"))

    names_no_change(store, monkeypatch)
    await put(store, hosted("acme", "/moved/acme"))
    await refreshed(directory)

    assert directory.tenant(TenantId("globex")) is globex
    moved = directory.tenant(TenantId("acme"))
    assert moved is not None and moved is not acme
    routed = directory.by_url("https", "idp.example.com", "/moved/acme/token/revoke")
    assert routed is not None and routed[0] is moved
    assert directory.by_url("https", "idp.example.com", "/t/acme/token/revoke") is None
    globex_routed = directory.by_url("https", "idp.example.com", "/t/globex/token/revoke")
    assert globex_routed is not None and globex_routed[0] is globex

    directory.invalidate()  # nothing changed since: the same views, the indexes stand
    await directory.refresh()
    assert directory.tenant(TenantId("acme")) is moved
    assert directory.by_issuer(f"{ORIGIN}/moved/acme") is moved


async def test_invalidate_after_a_write_reloads_what_it_changed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an admin write on this process does: the write, then ``invalidate()``."""
    await put(store, hosted("acme"))
    directory = Directory(store)
    await directory.refresh()
    listings = Listings(store, monkeypatch)
    await put(store, hosted("globex"))
    directory.invalidate()
    await directory.refresh()
    assert listings.calls == 0
    assert directory.tenant(TenantId("globex")) is not None


async def test_invalidate_without_a_version_step_reloads_everything(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, hosted("acme"))
    await caught_up(store)
    directory = Directory(store)
    await directory.refresh()
    listings = Listings(store, monkeypatch)
    directory.invalidate()
    await directory.refresh()
    assert listings.calls == 1
    await directory.refresh()
    assert listings.calls == 1


async def test_requests_arriving_during_a_reload_wait_for_that_one_reload(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full reload of many tenants takes long on a slow store: sixteen requests must not
    start sixteen of them, and a failed one fails its waiters and is tried again."""
    await put(store, hosted("acme"))
    directory = Directory(store)
    listings = Listings(store, monkeypatch, held=True, fail=frozenset({1}))
    waiting = [asyncio.ensure_future(directory.refresh()) for _ in range(16)]
    await listings.started.wait()
    for _ in range(5):  # every waiter has had turns to start a listing of its own
        await asyncio.sleep(0)
    listings.released.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert listings.calls == 1
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert directory.tenant(TenantId("acme")) is None

    waiting = [asyncio.ensure_future(directory.refresh()) for _ in range(16)]
    assert await asyncio.gather(*waiting) == [None] * 16
    assert listings.calls == 2
    assert directory.tenant(TenantId("acme")) is not None


async def test_a_full_reload_runs_behind_requests_that_answer_from_the_cache(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB's periodic reload (or one after its change stream was lost) lists every
    tenant: with 10,000 that took 50 ms on MongoDB and seconds on SecantusDB, and every
    request waited for it. Only this process's own write waits now."""
    await put(store, hosted("acme"))
    directory = Directory(store)
    await directory.refresh()
    acme = directory.tenant(TenantId("acme"))
    names_no_change(store, monkeypatch)
    listings = Listings(store, monkeypatch, held=True)
    await put(store, hosted("globex"))

    # A bound, not a timing: without the change these wait for the listing for ever.
    await asyncio.wait_for(asyncio.gather(*(directory.refresh() for _ in range(16))), 30)
    await listings.started.wait()
    assert listings.calls == 1
    assert directory.tenant(TenantId("acme")) is acme
    assert directory.tenant(TenantId("globex")) is None

    directory.invalidate()  # this process wrote: its next request waits for the reload
    writer = asyncio.ensure_future(directory.refresh())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not writer.done()
    listings.released.set()
    await writer
    assert directory.tenant(TenantId("globex")) is not None
    assert directory.reloading is None


async def test_a_failed_background_reload_is_tried_again_by_the_next_request(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(store, hosted("acme"))
    directory = Directory(store)
    await directory.refresh()
    names_no_change(store, monkeypatch)
    listings = Listings(store, monkeypatch, held=True, fail=frozenset({1, 2}))
    await put(store, hosted("globex"))
    # Answers from the cache while the reload waits (the bound: see the test above).
    await asyncio.wait_for(directory.refresh(), 30)
    reload = directory.reloading
    assert reload is not None
    listings.released.set()
    await asyncio.wait([reload])
    await asyncio.sleep(0)  # its done callback
    assert directory.reloading is None

    with pytest.raises(StoreUnavailable):
        await directory.refresh()  # a cache that could not be checked is not trusted
    await directory.refresh()
    assert listings.calls == 3
    assert directory.tenant(TenantId("globex")) is not None
