"""Soak: an hour of mixed load at about half the measured capacity, watched each minute.

The script starts the service itself (``revocation-service serve --no-tenants`` on a free
loopback port, the embedded store in a temporary data directory; ``--mongodb-uri`` to use
a MongoDB, ``--start-secantus`` to start a SecantusDB process for it), creates a tenant
(cascade ``grant``) and ``--clients`` confidential ``client_secret_basic`` clients
through the admin API, and registers a first population of credentials. Then:

1. capacity: ``--capacity-seconds`` of the mix (``soak_mix.MIX``) closed-loop on
   ``--concurrency`` connections: the operations a second the service and this
   generator, together on this machine, get through;
2. soak: ``--duration`` seconds open-loop at ``--load-fraction`` of that (or ``--rate``):
   arrivals at fixed times, sent whether or not earlier answers have come;
3. verification: every credential whose revocation was acknowledged is introspected
   (``{"active": false}``), a sample of the live ones too (active, their client and
   type), and the ``revoked`` events of the feed are counted against the revocations.

Every ``--sample-interval`` seconds it prints a line and writes a JSON line to ``--out``:
the service's RSS, open file descriptors and threads (every process of its session:
uvicorn's workers and plugin sandboxes included), its CPU and the generator's, latency
p50/p99/max and errors by status per operation, and error lines in the service's log.
The summary compares the first and last ``--window`` seconds; the exit status is 1 on any
error, wrong answer or failed verification, or growth past ``--max-rss-growth-pct`` or
``--max-fd-growth``.

The generator (one asyncio process, ``soak_http.LeanClient`` by default, httpx for
set-up and with ``--http-client httpx``) shares the machine with the service: on 2 cores
its CPU is CPU the service does not get, which is why the capacity is measured with the
same generator. ``docs/RELIABILITY.md`` ("Soak") has what it checks and the figures.

    python scripts/soak.py --duration 3600 --out soak.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
from bench import (
    BenchError,
    Child,
    free_port,
    machine,
    percentile,
    spawn,
    start_secantus,
    wait_http_ok,
)
from soak_http import HttpClient, HttpxClient, LeanClient
from soak_mix import (
    CLIENT_PREFIX,
    EVENTS_PAGE,
    GRANT_SIZE,
    MIX,
    UNIT_SIZE,
    UNITS_PER_BATCH,
    Interval,
    Traffic,
    members,
)
from soak_watch import Sampler, ServiceLog, Watched, write_json_line

SCRIPTS = Path(__file__).resolve().parent
REQUEST_TIMEOUT_S = 30.0
LAG_WARNING_MS = 1000.0
MAX_REGISTRATION = 10_000
"""Credentials in one registration request (the admin API's limit)."""
SQLITE_UNITS = 25_000
"""275,000 credentials, about 110 MB of SQLite: the writer's page cache (64 MiB) fills
while they are registered, not during the soak's first minutes, where it would pass for a
leak."""
MONGODB_UNITS = 2_000


class SoakError(Exception):
    pass


# --- set-up -----------------------------------------------------------------------------


def start(args: argparse.Namespace, tmp: Path, children: list[Child], admin_key: str) -> Watched:
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env["REVOCATION_ADMIN_KEY"] = admin_key
    database = None
    mongodb_uri = args.mongodb_uri
    if args.start_secantus:
        database, mongodb_uri = start_secantus(children, tmp, env)
    port = free_port()
    data_dir = tmp / "data"
    executable = Path(sys.executable).with_name("revocation-service")
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "app"]
    argv = [
        *command, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--no-tenants", "--workers", str(args.workers),
        "--log-level", args.service_log_level, "--log-json",
        "--plugins-dir", str(SCRIPTS.parent / "plugins"),
    ]  # fmt: skip
    if mongodb_uri:
        argv += ["--mongodb-uri", mongodb_uri]
    log_path = tmp / "service.log"
    service = spawn(children, "revocation-service", argv, log_path, cwd=tmp, env=env)
    wait_http_ok(service, "127.0.0.1", port)
    args.url = f"http://127.0.0.1:{port}"
    print(f"service: {' '.join(argv)}\nservice log: {log_path}", flush=True)
    return Watched(service, ServiceLog(log_path), None if mongodb_uri else data_dir, database)


def create_tenant(url: str, admin_key: str, tenant_id: str, clients: int) -> list[str]:
    """The tenant and its clients; their secrets."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
        settings = {
            "issuer": f"http://{tenant_id}.soak.invalid",
            "revocation": {"cascade": "grant"},
        }
        expect(http.put(f"/admin/v1/tenants/{tenant_id}", json=settings), 201)
        client_secrets = []
        for i in range(clients):
            secret = secrets.token_urlsafe(32)
            client = {
                "type": "confidential",
                "token_endpoint_auth_method": "client_secret_basic",
                "client_secret": secret,
                "scope": "introspect",
            }
            path = f"/admin/v1/tenants/{tenant_id}/clients/{CLIENT_PREFIX}{i}"
            expect(http.put(path, json=client), 201)
            client_secrets.append(secret)
        return client_secrets


def delete_tenant(url: str, admin_key: str, tenant_id: str) -> None:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=600.0) as http:
        expect(http.delete(f"/admin/v1/tenants/{tenant_id}"), 204)


def expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise SoakError(
            f"{response.request.method} {response.request.url.path} → "
            f"{response.status_code}: {response.text[:300]}"
        )


# --- the phases -------------------------------------------------------------------------


async def register_first(traffic: Traffic, units: int, per_request: int) -> None:
    print(f"registering {units * UNIT_SIZE:,} credentials ({units:,} units) ...", flush=True)
    started = time.monotonic()
    while traffic.next_unit < units:
        if not await traffic.register_units(min(per_request, units - traffic.next_unit)):
            raise SoakError(f"the first registration failed: {traffic.tally.samples[-1:]}")
    took = time.monotonic() - started
    print(f"  took {took:.1f}s ({units * UNIT_SIZE / took:,.0f} credentials/s)", flush=True)


async def closed_loop(traffic: Traffic, concurrency: int, seconds: float) -> int:
    """The mix on ``concurrency`` workers, each sending its next as soon as it has an
    answer; the operations completed."""
    deadline = time.monotonic() + seconds
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await traffic.run(traffic.choose())
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def open_loop(traffic: Traffic, rate: float, seconds: float, max_in_flight: int) -> int:
    """The mix at ``rate`` arrivals a second for ``seconds``, each sent at its scheduled
    time whether or not earlier ones have been answered; the arrivals sent."""
    loop = asyncio.get_running_loop()
    start_at = loop.time()
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()
    sent = 0
    while sent < total:
        due = min(total, int((loop.time() - start_at) * rate) + 1)
        while sent < due:
            scheduled = start_at + sent / rate
            sent += 1
            if traffic.in_flight >= max_in_flight:
                traffic.drop()
                continue
            task = loop.create_task(traffic.run(traffic.choose(), scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # Pacing: wait for the next arrival's time.
        await asyncio.sleep(max(0.0, start_at + sent / rate - loop.time()))
    if tasks:
        await asyncio.gather(*tasks)
    return sent


async def drain_events(traffic: Traffic) -> None:
    while await traffic.follow_events("events_drain") >= EVENTS_PAGE:
        pass


@dataclass
class Verification:
    revoked_checked: int = 0
    revoked_failed: int = 0
    live_checked: int = 0
    live_failed: int = 0


async def verify(traffic: Traffic, concurrency: int, live_sample: int) -> Verification:
    """Introspect every acknowledged revocation and a sample of the live credentials."""
    v = Verification()
    revoked = traffic.revoked
    live = traffic.live_access.sample(traffic.rng, live_sample // 3)
    live += traffic.live_refresh.sample(traffic.rng, live_sample // 3)
    for head in traffic.live_grants.sample(traffic.rng, live_sample // 3 // GRANT_SIZE + 1):
        live.extend(members(head))
    # One iterator shared by the workers, never a list of the million pairs.
    work = itertools.chain(((c, False) for c in revoked), ((c, True) for c in live))
    total = len(revoked) + len(live)
    step = max(1, total // 10)
    checked = 0
    print(f"verifying {len(revoked):,} revoked and {len(live):,} live credentials ...", flush=True)

    async def worker() -> None:
        nonlocal checked
        for credential, active in work:
            op = "verify_live" if active else "verify_revoked"
            right = await traffic.introspect(op, credential, active=active)
            if active:
                v.live_checked += 1
                v.live_failed += not right
            else:
                v.revoked_checked += 1
                v.revoked_failed += not right
            checked += 1
            if checked % step == 0:
                print(f"  {checked:,} / {total:,}", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return v


async def soak(
    args: argparse.Namespace, watched: Watched, admin_key: str, tenant_id: str, out: TextIO
) -> dict[str, Any]:
    client_secrets = create_tenant(args.url, admin_key, tenant_id, args.clients)
    seed = (args.seed if args.seed is not None else secrets.randbits(63)).to_bytes(8, "big")
    http = http_client(args)
    try:
        traffic = Traffic(
            http,
            tenant_id=tenant_id,
            client_secrets=client_secrets,
            seed=seed,
            admin_key=admin_key,
        )
        sampler = Sampler(watched, traffic, out)
        await register_first(traffic, args.initial_units, args.registration_units)

        rate = args.rate
        capacity = None
        if rate is None:
            print(
                f"capacity: {args.capacity_seconds:.0f}s of the mix, closed loop on "
                f"{args.concurrency} connections ...",
                flush=True,
            )
            sampler.start(time.monotonic())
            done = await closed_loop(traffic, args.concurrency, args.capacity_seconds)
            sample = sampler.take("capacity")
            capacity = done / sample["interval_s"]
            rate = capacity * args.load_fraction
            print(
                f"  capacity {capacity:,.0f} ops/s; soak rate {rate:,.1f} ops/s "
                f"({args.load_fraction:.0%})",
                flush=True,
            )
        print(f"soak: {args.duration:,.0f}s open loop at {rate:,.1f} ops/s ...", flush=True)
        stop = asyncio.Event()
        started = time.monotonic()
        sampler.start(started)
        watcher = asyncio.create_task(sampler.every("soak", args.sample_interval, stop))
        sent = await open_loop(traffic, rate, args.duration, args.max_in_flight)
        stop.set()
        await watcher
        if sampler.since_last() > 0.5:
            sampler.take("soak")
        soak_s = time.monotonic() - started

        await drain_events(traffic)
        verification = await verify(traffic, args.concurrency, args.verify_live)
        sampler.take("verify")
        return summarize(
            args, sampler, traffic, verification, capacity=capacity, rate=rate,
            sent=sent, soak_s=soak_s,
        )  # fmt: skip
    finally:
        await http.aclose()


def http_client(args: argparse.Namespace) -> HttpClient:
    if args.http_client == "httpx":
        return HttpxClient(args.url, args.concurrency, REQUEST_TIMEOUT_S)
    parts = urlsplit(args.url)
    return LeanClient(
        parts.hostname or "127.0.0.1", parts.port or 80, args.concurrency, REQUEST_TIMEOUT_S
    )


# --- the summary ------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return None
    mt, mv = mean([t for t, _ in points]), mean([v for _, v in points])
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return None
    return 3600 * sum((t - mt) * (v - mv) for t, v in points) / den


def windows(samples: Sequence[dict[str, Any]], window_s: float) -> tuple[list[int], list[int]]:
    """Indexes of the soak samples of the first and of the last ``window_s`` seconds
    (each at least one sample)."""
    if not samples:
        return [], []
    end = samples[-1]["t_s"]
    first = [i for i, s in enumerate(samples) if s["t_s"] <= window_s] or [0]
    last = [i for i, s in enumerate(samples) if s["t_s"] > end - window_s] or [len(samples) - 1]
    return first, last


def window_p99(intervals: Sequence[Interval]) -> dict[str, float]:
    merged: dict[str, list[float]] = {}
    for interval in intervals:
        for op, values in interval.latencies_ms.items():
            merged.setdefault(op, []).extend(values)
    return {op: round(percentile(sorted(v), 99), 2) for op, v in sorted(merged.items())}


def summarize(
    args: argparse.Namespace,
    sampler: Sampler,
    traffic: Traffic,
    v: Verification,
    *,
    capacity: float | None,
    rate: float,
    sent: int,
    soak_s: float,
) -> dict[str, Any]:
    soaked, soak_intervals = [], []
    for sample, interval in zip(sampler.samples, sampler.intervals, strict=True):
        if sample["phase"] == "soak":
            soaked.append(sample)
            soak_intervals.append(interval)
    window_s = args.window or min(600.0, args.duration / 3)
    first, last = windows(soaked, window_s)

    def figure(values: list[float], pick: Any = mean) -> tuple[float, float]:
        return pick([values[i] for i in first]), pick([values[i] for i in last])

    rss_first, rss_last = figure([s["service"]["rss_kb"] for s in soaked])
    rss_growth_pct = 100 * (rss_last - rss_first) / rss_first if rss_first else math.nan
    fds_first, fds_last = figure([s["fds_beyond_connections"] for s in soaked], max)
    threads_first, threads_last = figure([s["service"]["threads"] for s in soaked], max)
    db_first = db_last = None
    if soaked and "database" in soaked[0]:
        db_first, db_last = figure([s["database"]["rss_kb"] / 1024 for s in soaked])
    rss_slope = slope_per_hour([(s["t_s"], s["service"]["rss_kb"] / 1024) for s in soaked])
    t = traffic.tally
    events_checked = t.errors == 0
    events_ok = t.events_revoked == t.revocations and t.events_credentials == t.credentials_revoked
    log_errors = sum(sampler.watched.service_log.total.values())
    reasons = []
    if t.errors:
        reasons.append(f"{t.errors} errors ({t.wrong} wrong answers)")
    if v.revoked_failed or v.live_failed:
        reasons.append(
            f"verification: {v.revoked_failed} revoked not inactive, "
            f"{v.live_failed} live not active"
        )
    if events_checked and not events_ok:
        reasons.append(
            f"events feed: {t.events_revoked} revoked events taking down "
            f"{t.events_credentials} credentials, expected {t.revocations} / "
            f"{t.credentials_revoked}"
        )
    if log_errors:
        reasons.append(f"{log_errors} error lines in the service log")
    if rss_growth_pct > args.max_rss_growth_pct:
        reasons.append(f"RSS grew {rss_growth_pct:.1f}% (limit {args.max_rss_growth_pct}%)")
    if fds_last - fds_first > args.max_fd_growth:
        reasons.append(f"fds grew by {fds_last - fds_first:.0f} (limit {args.max_fd_growth})")
    return {
        "kind": "summary",
        "passed": not reasons,
        "reasons": reasons,
        "capacity_ops_s": None if capacity is None else round(capacity, 1),
        "rate_ops_s": round(rate, 1),
        "arrivals": sent,
        "achieved_ops_s": round(sent / soak_s, 1) if soak_s else None,
        "soak_s": round(soak_s, 1),
        "window_s": window_s,
        "errors": t.errors,
        "wrong_answers": t.wrong,
        "error_samples": t.samples,
        "revocations_acknowledged": t.revocations,
        "credentials_revoked": t.credentials_revoked,
        "verified_revoked": v.revoked_checked,
        "verified_revoked_failed": v.revoked_failed,
        "verified_live": v.live_checked,
        "verified_live_failed": v.live_failed,
        "events_revoked": t.events_revoked,
        "events_credentials": t.events_credentials,
        "events_checked": events_checked,
        "service_log_errors": dict(sampler.watched.service_log.total),
        "rss_mb_first": round(rss_first / 1024, 1),
        "rss_mb_last": round(rss_last / 1024, 1),
        "rss_growth_pct": round(rss_growth_pct, 2),
        "rss_slope_mb_per_h": None if rss_slope is None else round(rss_slope, 2),
        "fds_first": fds_first,
        "fds_last": fds_last,
        "threads_first": threads_first,
        "threads_last": threads_last,
        "database_rss_mb_first": None if db_first is None else round(db_first, 1),
        "database_rss_mb_last": None if db_last is None else round(db_last, 1),
        "p99_ms_first": window_p99([soak_intervals[i] for i in first]),
        "p99_ms_last": window_p99([soak_intervals[i] for i in last]),
        "store_bytes_last": soaked[-1]["store_bytes"] if soaked else None,
        "service_cpu_pct_mean": round(mean([s["service"]["cpu_pct"] or 0 for s in soaked]), 1),
        "generator_cpu_pct_mean": round(mean([s["generator"]["cpu_pct"] or 0 for s in soaked]), 1),
        "lag_max_ms": max((s["lag_max_ms"] for s in soaked), default=None),
    }


def print_summary(s: dict[str, Any]) -> None:
    print("\nsummary")
    if s["capacity_ops_s"] is not None:
        print(f"  capacity {s['capacity_ops_s']:,} ops/s (mix, closed loop, with this generator)")
    print(
        f"  soak {s['soak_s']:,.0f}s at {s['rate_ops_s']:,} ops/s scheduled, "
        f"{s['achieved_ops_s']:,} sent/s ({s['arrivals']:,} arrivals)"
    )
    print(
        f"  CPU (mean, % of a core): service {s['service_cpu_pct_mean']}, generator "
        f"{s['generator_cpu_pct_mean']}; generator lag max {s['lag_max_ms']} ms"
    )
    if s["lag_max_ms"] is not None and s["lag_max_ms"] > LAG_WARNING_MS:
        print("  WARNING: the generator fell behind its schedule: the rate was not held")
    print(f"  errors: {s['errors']} ({s['wrong_answers']} wrong answers)")
    for line in s["error_samples"][:10]:
        print(f"    {line}")
    print(
        f"  verified: {s['verified_revoked'] - s['verified_revoked_failed']:,} of "
        f"{s['verified_revoked']:,} acknowledged revocations inactive; "
        f"{s['verified_live'] - s['verified_live_failed']:,} of {s['verified_live']:,} "
        "live credentials (a sample) active"
    )
    events = "checked" if s["events_checked"] else "not checked (errors)"
    print(
        f"  events feed ({events}): {s['events_revoked']:,} revoked events, "
        f"{s['events_credentials']:,} credentials; acknowledged {s['revocations_acknowledged']:,}"
        f" revocations, {s['credentials_revoked']:,} credentials"
    )
    w = s["window_s"]
    print(
        f"  RSS (first / last {w:.0f}s, mean): {s['rss_mb_first']} → {s['rss_mb_last']} MB "
        f"({s['rss_growth_pct']:+.2f}%), slope {s['rss_slope_mb_per_h']} MB/h"
    )
    print(
        f"  fds beyond connections (max): {s['fds_first']} → {s['fds_last']}; "
        f"threads (max): {s['threads_first']} → {s['threads_last']}"
    )
    if s["database_rss_mb_first"] is not None:
        print(
            f"  database RSS (not checked: a test server): {s['database_rss_mb_first']} → "
            f"{s['database_rss_mb_last']} MB"
        )
    for op, first in s["p99_ms_first"].items():
        print(f"  p99 {op:<20} {first:>8.2f} → {s['p99_ms_last'].get(op, math.nan):>8.2f} ms")
    print(f"  service log error lines: {s['service_log_errors'] or 0}")
    print(f"\n{'PASSED' if s['passed'] else 'FAILED: ' + '; '.join(s['reasons'])}", flush=True)


# --- the run ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="An hour (--duration) of mixed load at half (--load-fraction) the "
        "measured capacity: memory, descriptors, latency and errors each minute, every "
        "acknowledged revocation verified at the end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of soak")
    p.add_argument("--load-fraction", type=float, default=0.5, help="of the measured capacity")
    p.add_argument(
        "--rate", type=float, help="arrivals a second instead (skips the capacity phase)"
    )
    p.add_argument(
        "--capacity-seconds", type=float, default=20.0, help="length of the capacity phase"
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="connections: of the capacity phase and the verification; the soak's limit",
    )
    p.add_argument("--sample-interval", type=float, default=60.0, help="seconds per sample")
    p.add_argument(
        "--window",
        type=float,
        help="seconds at the start and the end compared [600, or a third of --duration]",
    )
    p.add_argument("--out", type=Path, help="JSON lines [soak-YYYYmmdd-HHMMSS.jsonl]")
    p.add_argument("--mongodb-uri", help="use this MongoDB (a tenant of its own, deleted after)")
    p.add_argument(
        "--start-secantus",
        action="store_true",
        help="start a SecantusDB test server and use it (not MongoDB)",
    )
    p.add_argument("--workers", type=int, default=1, help="the service's worker processes")
    p.add_argument(
        "--http-client",
        choices=("lean", "httpx"),
        default="lean",
        help="the generator's HTTP client (httpx: several times the CPU a request)",
    )
    p.add_argument("--clients", type=int, default=4, help="confidential clients")
    p.add_argument(
        "--initial-units",
        type=int,
        help=f"units of {UNIT_SIZE} credentials registered first [{SQLITE_UNITS:,} on the "
        f"embedded store: more than its writer's 64 MiB page cache, full before the soak; "
        f"{MONGODB_UNITS:,} on MongoDB]",
    )
    p.add_argument(
        "--registration-units",
        type=int,
        default=900,
        help=f"units per request of that first registration (900: {900 * UNIT_SIZE:,} "
        "credentials, the admin API takes 10,000)",
    )
    p.add_argument(
        "--verify-live", type=int, default=10_000, help="live credentials checked at the end"
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=10_000,
        help="open requests past which an arrival is dropped (and counted as an error)",
    )
    p.add_argument(
        "--max-rss-growth-pct",
        type=float,
        default=10.0,
        help="fail if the service's RSS (mean of the last window) is more above the first's",
    )
    p.add_argument(
        "--max-fd-growth",
        type=int,
        default=16,
        help="fail if its descriptors beyond the generator's connections (max of the last "
        "window) grew more than this over the first's",
    )
    p.add_argument(
        "--service-log-level", default="info", help="the service's --log-level (info: a "
        "line per request, as in production; about 0.4 KB each)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, help="token seed [random]")
    p.add_argument("--keep-data", action="store_true", help="keep the data directory and logs")
    args = p.parse_args(argv)
    if args.mongodb_uri and args.start_secantus:
        p.error("--mongodb-uri or --start-secantus, not both")
    if min(args.duration, args.sample_interval, args.capacity_seconds) <= 0:
        p.error("--duration, --sample-interval and --capacity-seconds must be positive")
    if not 0 < args.load_fraction <= 1 or (args.rate is not None and args.rate <= 0):
        p.error("--load-fraction must be in (0, 1], --rate positive")
    if args.initial_units is None:
        mongodb = args.mongodb_uri or args.start_secantus
        args.initial_units = MONGODB_UNITS if mongodb else SQLITE_UNITS
    if min(args.concurrency, args.clients, args.workers, args.initial_units) < 1:
        p.error("--concurrency, --clients, --workers and --initial-units must be positive")
    if not 1 <= args.registration_units * UNIT_SIZE <= MAX_REGISTRATION:
        p.error(f"--registration-units: 1 to {MAX_REGISTRATION // UNIT_SIZE}")
    if args.out is None:
        args.out = Path(time.strftime("soak-%Y%m%d-%H%M%S.jsonl"))
    return args


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="revocation-soak-"))
    children: list[Child] = []
    admin_key = secrets.token_urlsafe(32)
    tenant_id = f"soak-{secrets.token_hex(4)}"
    watched = None
    try:
        with args.out.open("w") as out:
            write_json_line(
                out,
                {
                    "kind": "start",
                    "machine": machine(),
                    "settings": {k: str(v) for k, v in vars(args).items()},
                    "tenant_id": tenant_id,
                    "mix_pct": MIX,
                    "credentials_per_registration": UNITS_PER_BATCH * UNIT_SIZE,
                },
            )
            watched = start(args, tmp, children, admin_key)
            summary = asyncio.run(soak(args, watched, admin_key, tenant_id, out))
            write_json_line(out, summary)
        print_summary(summary)
        print(f"samples: {args.out}")
        return 0 if summary["passed"] else 1
    except (SoakError, BenchError) as exc:
        print(f"SOAK FAILED: {exc}", file=sys.stderr, flush=True)
        if watched is not None:
            print(watched.service.log_tail(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopping the processes started", file=sys.stderr, flush=True)
        return 130
    finally:
        if args.mongodb_uri and watched is not None and watched.service.running:
            with contextlib.suppress(SoakError, httpx.HTTPError):
                delete_tenant(args.url, admin_key, tenant_id)
        for child in reversed(children):
            child.stop()
        if args.keep_data:
            print(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
