"""What one tenant's configuration change costs the other tenants (issue 12), in-process.

``--store sqlite`` (the default) builds a SQLite store (in a temporary directory)
holding ``--tenants`` tenants, all issuers on one origin (``https://idp.bench/t/<n>``),
each with a client, then measures the process's ``Directory``:

1. ``refresh()`` after a change to one tenant's client, median of ``--changes`` changes;
2. a request's tenant and client lookups (``refresh``, ``by_url``, ``client``) spread over
   ``--active`` tenants for ``--seconds`` while one tenant changes every second: lookups
   per second and the worst lookup (a refresh that reloads every tenant stalls the
   event loop, so every request waiting meanwhile);
3. ``by_url`` alone with 1 and with ``--tenants`` tenants, per call.

``--baseline FILE`` runs the same with the ``Directory`` of another ``app/directory.py``
(e.g. ``git show <commit>:app/directory.py > /tmp/old_directory.py``) for the A/B in one
run. ``--lookups N`` only resolves ``N`` URLs, for callgrind (the difference between
``N`` and 0, as in ``count_instructions.py``).

    python scripts/bench_tenant_churn.py --tenants 10000 --baseline /tmp/old_directory.py

``--store mongodb`` measures what MongoDB's periodic full reload costs requests instead:
it starts a SecantusDB server (MongoDB's wire protocol, the tests' MongoDB; a process of
its own, as MongoDB would be) in a temporary directory, opens ``MongoStore`` on it with
``refresh_interval_s`` of ``--refresh-interval`` seconds, writes ``--tenants`` tenants
with a client each (``put_tenant`` and ``put_client``, in concurrent batches), then runs
the lookups of phase 2 over ``--active`` tenants for ``--seconds`` with no configuration
change at all: the only catch-ups are the periodic ones, each a full reload
(``list_tenants``), after which every active tenant's client is read again. It reports
lookups per second, their p99 and the worst one, the full reloads and how long their
``list_tenants`` took (seen from its caller, so including the time the loop ran lookups
meanwhile), and the tenants and clients read on their own; with ``--baseline``, for
that ``Directory`` too, on the same server in the same run.

    python scripts/bench_tenant_churn.py --store mongodb --tenants 10000 \\
        --refresh-interval 2 --seconds 20 --baseline /tmp/old_directory.py
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # scripts/bench.py

from bench import Child, start_secantus

from app.application import settle_heap
from app.directory import Directory
from app.models import Client, ClientType, Tenant
from app.store.mongodb.store import MongoStore
from app.store.sqlite.store import SqliteStore
from app.types import ClientId, TenantId

ORIGIN = "https://idp.bench"
BATCH = 500
MONGODB_BATCH = 100
"""Tenants written at once to SecantusDB: a transaction each (``put_tenant``)."""
SETTLE_TIMEOUT_S = 300.0


def tenant(n: int, updated_at: int = 0) -> Tenant:
    issuer = f"{ORIGIN}/t/{n}"
    return Tenant(TenantId(f"t{n}"), {"issuer": issuer}, os.urandom(16), 0, updated_at)


def client(n: int, updated_at: int = 0) -> Client:
    return Client(
        TenantId(f"t{n}"),
        ClientId("app"),
        ClientType.CONFIDENTIAL,
        "client_secret_basic",
        secret_hash=b"\x01" * 32,
        updated_at=updated_at,
    )


async def populate(store: SqliteStore | MongoStore, count: int, batch: int = BATCH) -> None:
    """``count`` tenants with a client each, written in concurrent batches (on SQLite,
    one commit per batch, the writer's group commit; on MongoDB, a transaction each)."""
    for start in range(0, count, batch):
        ns = range(start, min(start + batch, count))
        await asyncio.gather(
            *(store.put_tenant(tenant(n), [tenant(n).settings["issuer"]]) for n in ns)
        )
        await asyncio.gather(*(store.put_client(client(n)) for n in ns))


class FullReloads(Directory):
    """This ``Directory`` as if the store could never name the changed tenants: what the
    reloads alone cost, apart from routing."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(_Unnamed(store))


class _Unnamed:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def config_changes_since(self, version: int) -> None:
        return None


def load_baseline(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("baseline_directory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def refresh_after_change(directory: Any, store: SqliteStore, changes: int) -> float:
    """Median seconds of ``refresh()`` after one tenant's client changed."""
    times = []
    for i in range(changes):
        await store.put_client(client(i % 7, updated_at=i + 1))
        started = time.perf_counter()
        await directory.refresh()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def lookups_under_churn(
    directory: Any, store: SqliteStore, active: int, seconds: float
) -> tuple[float, float, float]:
    """Lookups per second, their p99 and the worst one, in seconds, while one tenant
    changes every second (a task of its own, as an admin request on the same loop)."""

    async def churn() -> None:
        n = 0
        while True:
            await asyncio.sleep(1.0)
            n += 1
            await store.put_client(client(active + 1, updated_at=n))

    changer = asyncio.create_task(churn())
    try:
        latencies, _ = await timed_lookups(directory, active, seconds)
    finally:
        changer.cancel()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)], latencies[-1]


async def timed_lookups(
    directory: Any, active: int, seconds: float
) -> tuple[list[float], list[float]]:
    """A request's lookups spread over ``active`` tenants for ``seconds``: their
    latencies, sorted, and how long each yield to the other tasks (every 64 lookups)
    took, in seconds. A task's work during a yield (a background reload's) is in no
    lookup's latency, but requests arriving meanwhile would wait for it."""
    latencies: list[float] = []
    yields: list[float] = []
    n = 0
    end = time.perf_counter() + seconds
    while (started := time.perf_counter()) < end:
        t = n % active
        await directory.refresh()
        view, _ = directory.by_url("https", "idp.bench", f"/t/{t}/token/revoke")
        assert await directory.client(view.tenant_id, "app") is not None
        latencies.append(time.perf_counter() - started)
        n += 1
        if n % 64 == 0:
            paused = time.perf_counter()
            await asyncio.sleep(0)  # let other tasks in, as other requests would
            yields.append(time.perf_counter() - paused)
    latencies.sort()
    return latencies, yields


async def by_url_cost(directory_class: Any, store: SqliteStore, calls: int) -> float:
    directory = directory_class(store)
    await directory.refresh()
    path = "/t/5/token/revoke"
    directory.by_url("https", "idp.bench", path)
    started = time.perf_counter()
    for _ in range(calls):
        directory.by_url("https", "idp.bench", path)
    return (time.perf_counter() - started) / calls


async def measure(
    name: str, directory_class: Any, stores: dict[int, SqliteStore], args: argparse.Namespace
) -> None:
    big = stores[args.tenants]
    directory = directory_class(big)
    await directory.refresh()
    refresh_s = await refresh_after_change(directory, big, args.changes)
    rate, p99, worst = await lookups_under_churn(directory, big, args.active, args.seconds)
    one = await by_url_cost(directory_class, stores[1], 20_000)
    many = await by_url_cost(directory_class, big, 2_000)
    print(
        f"{name:>18}  refresh after a change: {refresh_s * 1e3:8.2f} ms   "
        f"lookups under churn: {rate:9,.0f}/s  p99 {p99 * 1e6:7.1f} µs  "
        f"max {worst * 1e3:7.2f} ms   "
        f"by_url: {one * 1e6:5.2f} µs (1 tenant) {many * 1e6:8.2f} µs ({args.tenants:,} tenants)"
    )


async def only_lookups(count: int, tenants: int) -> None:
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
        store = SqliteStore(Path(tmp) / "store.sqlite3")
        await store.open()
        try:
            await populate(store, tenants)
            directory = Directory(store)
            await directory.refresh()
            directory.by_url("https", "idp.bench", "/t/0/token/revoke")
            for _ in range(count):
                directory.by_url("https", "idp.bench", "/t/0/token/revoke")
        finally:
            await store.close()


@contextlib.contextmanager
def secantus_server(tmp: Path) -> Iterator[str]:
    """A SecantusDB server process, as ``scripts/bench.py`` starts it: its URI; stopped on
    exit. A process of its own, as MongoDB would be, rather than threads sharing this
    process's GIL with the loop."""
    children: list[Child] = []
    try:
        _, uri = start_secantus(children, tmp, dict(os.environ))
        yield uri
    finally:
        for child in children:
            child.stop()


class CountingStore:
    """A store that counts (and times) the reads a ``Directory`` makes of it."""

    def __init__(self, store: MongoStore) -> None:
        self._store = store
        self.reloads = 0
        """``list_tenants`` calls: full reloads."""
        self.reloaded: list[float] = []
        """Seconds of each ``list_tenants`` that returned."""
        self.tenant_reads = 0
        self.client_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def reset(self) -> None:
        self.reloads, self.reloaded, self.tenant_reads, self.client_reads = 0, [], 0, 0

    async def list_tenants(self) -> list[Tenant]:
        self.reloads += 1
        started = time.perf_counter()
        tenants = await self._store.list_tenants()
        self.reloaded.append(time.perf_counter() - started)
        return tenants

    async def get_tenant(self, tenant_id: TenantId) -> Tenant | None:
        self.tenant_reads += 1
        return await self._store.get_tenant(tenant_id)

    async def get_client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None:
        self.client_reads += 1
        return await self._store.get_client(tenant_id, client_id)


async def settle(store: MongoStore) -> None:
    """Wait until the change stream has caught up with the writes: the configuration
    version takes no more than the refresh period's step for two half-seconds in a row
    (else the lookups would meet the load's own changes)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    quiet = 0
    version = await store.config_version()
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the configuration version still moves after {SETTLE_TIMEOUT_S} s")
        await asyncio.sleep(0.5)
        version, previous = await store.config_version(), version
        quiet = quiet + 1 if version - previous <= 1 else 0


async def measure_periodic(
    name: str, directory_class: Any, store: MongoStore, args: argparse.Namespace
) -> None:
    counting = CountingStore(store)
    directory = directory_class(counting)
    await directory.refresh()
    counting.reset()
    try:
        latencies, yields = await timed_lookups(
            directory, min(args.active, args.tenants), args.seconds
        )
    finally:
        close = getattr(directory, "close", None)  # a reload still running (this one)
        if close is not None:
            await close()
    rate = len(latencies) / args.seconds
    p99, worst = latencies[int(len(latencies) * 0.99)], latencies[-1]
    slow = len(latencies) - bisect.bisect_left(latencies, 1e-3)
    took = counting.reloaded
    unfinished = counting.reloads - len(took)
    print(
        f"{name:>18}  lookups: {rate:9,.0f}/s  p99 {p99 * 1e3:6.3f} ms  "
        f"max {worst * 1e3:7.2f} ms  over 1 ms: {slow:5,}   "
        f"other tasks ran up to {max(yields, default=0.0) * 1e3:6.2f} ms at once"
    )
    print(
        f"{'':>18}  full reloads: {counting.reloads}"
        + (f" ({unfinished} unfinished at the end)" if unfinished else "")
        + (
            f", list_tenants {statistics.mean(took) * 1e3:.1f} ms mean, "
            f"{max(took) * 1e3:.1f} ms max (seen from its caller)"
            if took
            else ""
        )
        + f"   read again: {counting.tenant_reads} tenants, {counting.client_reads:,} clients"
    )


async def main_mongodb(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="churn-") as tmp,
        secantus_server(Path(tmp)) as uri,
    ):
        store = MongoStore(uri, "churn", refresh_interval_s=args.refresh_interval)
        await store.open()
        try:
            started = time.perf_counter()
            await populate(store, args.tenants, MONGODB_BATCH)
            await settle(store)
            loaded = time.perf_counter() - started
            settle_heap()  # as ``serve`` does once started: the collector skips it all
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"{args.tenants:,} tenants on one origin in SecantusDB (written in "
                f"{loaded:.0f} s), {min(args.active, args.tenants):,} active, a full reload "
                f"every {args.refresh_interval:g} s, {args.seconds:g} s each, load {load}"
            )
            if args.baseline is not None:
                baseline = load_baseline(args.baseline).Directory
                await measure_periodic("baseline", baseline, store, args)
            await measure_periodic("this", Directory, store, args)
        finally:
            await store.close()


async def main(args: argparse.Namespace) -> None:
    if args.store == "mongodb":
        await main_mongodb(args)
        return
    if args.lookups is not None:
        await only_lookups(args.lookups, args.tenants)
        return
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
        stores = {n: SqliteStore(Path(tmp) / f"store-{n}.sqlite3") for n in (1, args.tenants)}
        try:
            for n, store in stores.items():
                await store.open()
                await populate(store, n)
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"{args.tenants:,} tenants on one origin, load {load}")
            if args.baseline is not None:
                await measure("baseline", load_baseline(args.baseline).Directory, stores, args)
            await measure("this", Directory, stores, args)
            await measure("this, full reloads", FullReloads, stores, args)
        finally:
            for store in stores.values():
                await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store",
        choices=["sqlite", "mongodb"],
        default="sqlite",
        help="sqlite: the three phases; mongodb: MongoDB's periodic reload (SecantusDB)",
    )
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=20, help="changes timed [20]")
    parser.add_argument("--active", type=int, default=1_000, help="tenants sending requests [1000]")
    parser.add_argument("--seconds", type=float, default=5.0, help="of lookups under churn [5]")
    parser.add_argument(
        "--refresh-interval",
        type=float,
        default=2.0,
        help="mongodb: seconds between the periodic full reloads [2]",
    )
    parser.add_argument("--baseline", type=Path, help="another app/directory.py, for the A/B")
    parser.add_argument("--lookups", type=int, help="only resolve this many URLs (callgrind)")
    parsed = parser.parse_args()
    if parsed.store == "sqlite" and parsed.lookups is None and parsed.active >= parsed.tenants:
        # The churn changes the tenant after the active ones, which must exist.
        parser.error("--active must be below --tenants")
    asyncio.run(main(parsed))
