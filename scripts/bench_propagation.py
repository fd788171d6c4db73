"""How fast a revocation reaches resource servers, and what push delivery costs (issue 11).

``scripts/bench.py --propagation`` runs this (the other options are this script's). One
run, on this machine, against a service it starts (``serve`` with default flags and
``--fetch-allow-private``: the receivers listen on loopback), on SQLite or (``--store
mongodb``) a SecantusDB process:

1. **Throughput cost**: bench.py's saturating load (its load client, warm-up and
   connections) on ``POST /token/revoke`` with no receiver, then, back to back, with
   ``--receivers`` push receivers registered; the ratio of the two. Then how long the
   receivers took to catch up with the burst (every SET of it at every receiver).
2. **Latency**: at each of ``--rates`` revocations a second for ``--duration`` seconds,
   open loop (sent on a schedule, whatever the answers), each revoking a registered token
   of its own with a ``grant_id`` of its own. The time from a revocation's ``200`` to its
   event (a) at every push receiver, (b) at a long-poll reader of
   ``GET {issuer}/revocation/events?wait=…`` (a client with scope ``revocation_events``);
   p50, p99 and max; and how long after the last revocation's ``200`` the last SET
   arrived. Events map back to revocations by their ``grant_id`` (in the SET's payload
   and in the feed's event).

The receivers are one lean process (``bench_set_receiver.py``: raw asyncio and httptools,
``/r/0`` … ``/r/{N-1}``) that records ``time.time()`` as each SET arrives; the revocation
sender and the long-poll reader run here, on the same clock.

    .venv/bin/python scripts/bench.py --propagation --json propagation.json
    .venv/bin/python scripts/bench.py --propagation --store mongodb

Figures: ``docs/PERFORMANCE.md``; the design: ``docs/PROPAGATION.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

from bench import (  # noqa: E402
    Admin,
    BenchError,
    Child,
    Figures,
    LoadSpec,
    Population,
    build_requests,
    code_version,
    free_port,
    loud,
    machine,
    measure,
    percentile,
    print_table,
    register,
    request_head,
    setup_tenant,
    spawn,
    start_secantus,
    start_service,
    supervised,
    token_of,
    wait_http_ok,
)

TENANT = "bench"
FEED_CLIENT = "bench-feed"
PROBES = 3
"""Revocations that show every receiver is being delivered to before a phase."""
LONG_POLL_S = 30
FEED_PAGE = 1000
POLL_S = 0.05
"""How often the receivers' count is read while waiting for them."""
IDLE_CONNECTION_S = 2.0
"""A sender connection idle this long is replaced (uvicorn closes them after 5 s)."""
P99_AIM_MS = 1000.0
THROUGHPUT_AIM = 0.90


# --- small async HTTP/1.1 -----------------------------------------------------------------


class Conn:
    """A keep-alive connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.used = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        k = lower.find(b"\r\ncontent-length:")
        if k < 0:
            raise BenchError(f"no Content-Length in {head[:200]!r}")
        length = int(lower[k + 17 : lower.index(b"\r\n", k + 17)])
        body = await self.reader.readexactly(length) if length else b""
        self.used = time.monotonic()
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


async def call(host: str, port: int, method: str, path: str) -> Any:
    """One request on a connection of its own; the JSON answer (200 expected)."""
    conn = await Conn.open(host, port)
    try:
        request = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\r\n"
        status, body = await conn.exchange(request.encode())
    finally:
        conn.close()
    if status != 200:
        raise BenchError(f"{method} {path} → {status}: {body[:300]!r}")
    return json.loads(body)


# --- the receivers --------------------------------------------------------------------------


@dataclass
class Receivers:
    """The receiver process, seen from here."""

    child: Child
    port: int
    count: int

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port}/r/{i}"

    async def reset(self) -> None:
        await call("127.0.0.1", self.port, "POST", "/reset")

    async def arrived(self) -> dict[str, Any]:
        data: dict[str, Any] = await call("127.0.0.1", self.port, "GET", "/count")
        return data

    async def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = await call("127.0.0.1", self.port, "GET", "/dump")
        return data

    async def wait_for(self, expected: int, deadline: float) -> tuple[dict[str, Any], bool]:
        """Until ``expected`` SETs arrived since the reset (or the deadline): the last
        count, and whether it reached ``expected``."""
        while True:
            got = await self.arrived()
            if got["count"] >= expected:
                return got, True
            if time.monotonic() > deadline:
                return got, False
            await asyncio.sleep(POLL_S)


def start_receivers(children: list[Child], tmp: Path, env: dict[str, str], count: int) -> Receivers:
    port = free_port()
    argv = [
        sys.executable, str(SCRIPTS / "bench_set_receiver.py"), "--port", str(port),
        "--paths", str(max(count, 1)),
    ]  # fmt: skip
    child = spawn(children, "set-receivers", argv, tmp / "receivers.log", cwd=tmp, env=env)
    wait_http_ok(child, "127.0.0.1", port)
    return Receivers(child, port, count)


def register_receivers(admin: Admin, receivers: Receivers) -> None:
    for i in range(receivers.count):
        body = {"delivery": "push", "url": receivers.url(i), "events": ["revoked"]}
        admin.expect("PUT", f"/admin/v1/tenants/{TENANT}/receivers/r{i}", body, ok=(200, 201))


def setup_feed_client(admin: Admin) -> str:
    secret = secrets.token_urlsafe(32)
    client = {
        "type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": secret,
        "scope": "revocation_events",
    }
    admin.expect("PUT", f"/admin/v1/tenants/{TENANT}/clients/{FEED_CLIENT}", client, ok=(200, 201))
    return secret


# --- tokens ---------------------------------------------------------------------------------


@dataclass
class Allocation:
    """Hands out consecutive token numbers: each phase revokes tokens of its own."""

    next: int = 0

    def take(self, n: int) -> range:
        taken = range(self.next, self.next + n)
        self.next += n
        return taken


# --- the long-poll reader -------------------------------------------------------------------


@dataclass
class FeedReader:
    """Follows ``{issuer}/revocation/events`` by long-poll; the first arrival time of
    every ``grant_id`` number it sees."""

    host: str
    port: int
    authorization: str
    cursor: str = "0"
    arrivals: dict[int, float] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    page_read: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, numbers: Iterable[int], deadline: float) -> bool:
        """Until every grant number of ``numbers`` arrived (or the deadline)."""
        missing = set(numbers)
        while True:
            missing -= self.arrivals.keys()
            remaining = deadline - time.monotonic()
            if not missing or remaining <= 0:
                return not missing
            self.page_read.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.page_read.wait(), remaining)

    def _request(self, wait: int) -> bytes:
        path = f"/revocation/events?after={self.cursor}&limit={FEED_PAGE}&wait={wait}"
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nTenant-ID: {TENANT}\r\n"
            f"Authorization: {self.authorization}\r\n\r\n"
        ).encode()

    async def catch_up(self) -> None:
        """Move the cursor past every event so far (not recorded)."""
        conn = await Conn.open(self.host, self.port)
        try:
            while True:
                status, body = await conn.exchange(self._request(0))
                if status != 200:
                    raise BenchError(f"events feed → {status}: {body[:300]!r}")
                page = json.loads(body)
                self.cursor = page["next"]
                if len(page["events"]) < FEED_PAGE:
                    return
        finally:
            conn.close()

    async def follow(self) -> None:
        """Until cancelled."""
        conn: Conn | None = None
        try:
            while True:
                if conn is None:
                    conn = await Conn.open(self.host, self.port)
                try:
                    status, body = await conn.exchange(self._request(LONG_POLL_S))
                except (OSError, asyncio.IncompleteReadError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = None
                    continue
                now = time.time()
                self.requests += 1
                if status != 200:
                    self.errors.append(f"{status} {body[:200]!r}")
                    await asyncio.sleep(0.1)
                    continue
                page = json.loads(body)
                for event in page["events"]:
                    number = grant_number(event.get("grant_id"))
                    if number is not None:
                        self.arrivals.setdefault(number, now)
                self.cursor = page["next"]
                self.page_read.set()
        finally:
            if conn is not None:
                conn.close()


def grant_number(grant_id: object) -> int | None:
    if not isinstance(grant_id, str):
        return None
    tail = grant_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# --- the open-loop sender -------------------------------------------------------------------


@dataclass
class Sent:
    """What the revocations of a latency phase got: per token number, the time of the
    ``200`` (``time.time()``) and the request's latency."""

    ok_at: dict[int, float] = field(default_factory=dict)
    latency_s: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    late_s: float = 0.0
    """How far behind its schedule the most delayed request was sent."""


class Sender:
    """Sends prebuilt revocations on a schedule, on a pool of keep-alive connections
    (a new one when none is free: the schedule never waits for an answer)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[Conn] = []

    async def _connection(self) -> Conn:
        while self.idle:
            conn = self.idle.pop()
            if time.monotonic() - conn.used < IDLE_CONNECTION_S:
                return conn
            conn.close()
        return await Conn.open(self.host, self.port)

    async def _one(self, number: int, request: bytes, sent: Sent) -> None:
        started = time.perf_counter()
        conn = None
        try:
            conn = await self._connection()
            status, body = await conn.exchange(request)
        except (OSError, asyncio.IncompleteReadError, BenchError) as exc:
            sent.errors.append(f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.close()
            return
        now = time.time()
        sent.latency_s.append(time.perf_counter() - started)
        sent.statuses[status] = sent.statuses.get(status, 0) + 1
        if status == 200:
            sent.ok_at[number] = now
        elif len(sent.errors) < 5:
            sent.errors.append(f"{status} {body[:200]!r}")
        self.idle.append(conn)

    async def run(self, numbers: range, requests: list[bytes], rate: float) -> Sent:
        sent = Sent()
        tasks = []
        t0 = time.monotonic()
        for k, (number, request) in enumerate(zip(numbers, requests, strict=True)):
            due = t0 + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.late_s = max(sent.late_s, time.monotonic() - due)
            tasks.append(asyncio.create_task(self._one(number, request, sent)))
        await asyncio.gather(*tasks)
        return sent

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# --- figures --------------------------------------------------------------------------------


def spread_ms(values_s: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(v * 1000 for v in values_s)
    if not ordered:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 2),  # type: ignore[arg-type]
        "p99_ms": round(percentile(ordered, 99), 2),  # type: ignore[arg-type]
        "max_ms": round(ordered[-1], 2),
    }


@dataclass
class LatencyFigures:
    rate: float
    duration_s: float
    receivers: int
    sent: int
    ok: int
    statuses: dict[str, int]
    sender_errors: list[str]
    sender_late_ms: float
    revocation: dict[str, Any]
    """The revocations' own latency (request to 200)."""
    expected_sets: int
    sets_seen: int
    """Distinct (receiver, event) pairs of this phase's revocations."""
    set_repeats: int
    push: dict[str, Any]
    long_poll_expected: int
    long_poll_seen: int
    long_poll: dict[str, Any]
    last_set_after_last_revocation_s: float | None
    drained: bool
    service_cpu_pct: float | None
    receivers_cpu_pct: float | None

    @property
    def complete(self) -> bool:
        return (
            self.drained
            and self.ok == self.sent
            and self.sets_seen == self.expected_sets
            and self.long_poll_seen == self.long_poll_expected
        )


async def latency_phase(
    *,
    rate: float,
    duration_s: float,
    numbers: range,
    requests: list[bytes],
    sender: Sender,
    reader: FeedReader,
    receivers: Receivers,
    service: Child,
    drain_timeout_s: float,
) -> LatencyFigures:
    await receivers.reset()
    cpu0 = (service.cpu_seconds(), receivers.child.cpu_seconds(), time.monotonic())
    sent = await sender.run(numbers, requests, rate)
    last_ok = max(sent.ok_at.values(), default=None)
    expected_sets = len(sent.ok_at) * receivers.count
    deadline = time.monotonic() + drain_timeout_s
    _, drained = await receivers.wait_for(expected_sets, deadline)
    await reader.wait_for(sent.ok_at.keys(), deadline)
    cpu1 = (service.cpu_seconds(), receivers.child.cpu_seconds(), time.monotonic())
    dump = await receivers.dump()

    first: dict[tuple[int, int], float] = {}
    repeats = 0
    for receiver, grant, at in zip(dump["receiver"], dump["grant"], dump["time"], strict=True):
        if grant not in sent.ok_at:
            continue
        key = (receiver, grant)
        if key in first:
            repeats += 1
        else:
            first[key] = at
    push = [at - sent.ok_at[grant] for (_, grant), at in first.items()]
    polled = [reader.arrivals[g] - ok for g, ok in sent.ok_at.items() if g in reader.arrivals]
    long_poll_seen = sum(1 for g in sent.ok_at if g in reader.arrivals)
    last_set = max(first.values(), default=None)
    wall = cpu1[2] - cpu0[2]

    def pct(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else round(100 * (after - before) / wall, 1)

    return LatencyFigures(
        rate=rate,
        duration_s=duration_s,
        receivers=receivers.count,
        sent=len(numbers),
        ok=len(sent.ok_at),
        statuses={str(k): v for k, v in sorted(sent.statuses.items())},
        sender_errors=sent.errors[:5],
        sender_late_ms=round(sent.late_s * 1000, 2),
        revocation=spread_ms(sent.latency_s),
        expected_sets=expected_sets,
        sets_seen=len(first),
        set_repeats=repeats,
        push=spread_ms(push),
        long_poll_expected=len(sent.ok_at),
        long_poll_seen=long_poll_seen,
        long_poll=spread_ms(polled),
        last_set_after_last_revocation_s=(
            None if last_set is None or last_ok is None else round(last_set - last_ok, 3)
        ),
        drained=drained and long_poll_seen == len(sent.ok_at),
        service_cpu_pct=pct(cpu0[0], cpu1[0]),
        receivers_cpu_pct=pct(cpu0[1], cpu1[1]),
    )


async def latency_phases(
    args: argparse.Namespace,
    *,
    port: int,
    head: bytes,
    seed: bytes,
    allocation: Allocation,
    feed_secret: str,
    receivers: Receivers,
    service: Child,
) -> list[LatencyFigures]:
    reader = FeedReader("127.0.0.1", port, basic(FEED_CLIENT, feed_secret))
    await reader.catch_up()
    following = asyncio.create_task(reader.follow())
    sender = Sender("127.0.0.1", port)
    out = []
    try:
        for rate in args.rates:
            numbers = allocation.take(round(rate * args.duration))
            spec = LoadSpec(
                "127.0.0.1", port, head, [token_of(seed, i) for i in numbers], 1, args.timeout
            )
            print(
                f"latency at {rate:g} revocations/s for {args.duration:g}s "
                f"({len(numbers)} revocations, {receivers.count} receivers) ...",
                flush=True,
            )
            figures = await latency_phase(
                rate=rate,
                duration_s=args.duration,
                numbers=numbers,
                requests=build_requests(spec),
                sender=sender,
                reader=reader,
                receivers=receivers,
                service=service,
                drain_timeout_s=args.drain_timeout,
            )
            out.append(figures)
            print(
                f"  {figures.ok}/{figures.sent} revoked; SETs {figures.sets_seen:,}/"
                f"{figures.expected_sets:,}, push p99 {figures.push['p99_ms']} ms; long-poll "
                f"{figures.long_poll_seen}/{figures.long_poll_expected}, p99 "
                f"{figures.long_poll['p99_ms']} ms",
                flush=True,
            )
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        sender.close()
    if reader.errors:
        loud(f"the long-poll reader had errors: {reader.errors[:5]}")
    return out


# --- throughput -----------------------------------------------------------------------------


@dataclass
class CatchUp:
    expected_sets: int
    backlog_at_load_end: int
    seconds: float | None
    """From the end of the load to the last SET of the burst at the receivers."""
    sets_per_s: float | None
    """Delivery rate while catching up (the backlog over ``seconds``)."""
    complete: bool


async def revoke_and_wait(
    port: int, head: bytes, seed: bytes, numbers: range, receivers: Receivers, timeout_s: float
) -> None:
    """Revoke ``numbers`` and wait until every receiver has each: delivery is running."""
    await receivers.reset()
    spec = LoadSpec("127.0.0.1", port, head, [token_of(seed, i) for i in numbers], 1, timeout_s)
    sender = Sender("127.0.0.1", port)
    try:
        sent = await sender.run(numbers, build_requests(spec), rate=50.0)
    finally:
        sender.close()
    if len(sent.ok_at) != len(numbers):
        raise BenchError(f"probe revocations failed: {sent.statuses} {sent.errors}")
    expected = len(numbers) * receivers.count
    got, done = await receivers.wait_for(expected, time.monotonic() + timeout_s)
    if not done:
        raise BenchError(
            f"the receivers got {got['count']} of {expected} probe SETs in {timeout_s:g}s: "
            "is delivery running?"
        )


async def catch_up(
    receivers: Receivers, expected: int, load_end: float, timeout_s: float
) -> CatchUp:
    at_end = (await receivers.arrived())["count"]
    got, done = await receivers.wait_for(expected, time.monotonic() + timeout_s)
    seconds = None if got["last"] is None else max(0.0, got["last"] - load_end)
    backlog = max(0, expected - at_end)
    return CatchUp(
        expected_sets=expected,
        backlog_at_load_end=backlog,
        seconds=None if seconds is None else round(seconds, 3),
        sets_per_s=round(backlog / seconds) if seconds and backlog else None,
        complete=done,
    )


# --- the run --------------------------------------------------------------------------------


def run(args: argparse.Namespace, tmp: Path, children: list[Child]) -> int:
    info = machine()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    seed = (args.seed if args.seed is not None else secrets.randbits(63)).to_bytes(8, "big")
    key = secrets.token_urlsafe(32)
    env["REVOCATION_ADMIN_KEY"] = key
    print(
        f"machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"Python {info['python']}; code {info['code']}"
    )
    print(
        "NOTE: the service, the receivers, the load client and the long-poll reader (and the "
        "SecantusDB server) share this machine."
    )
    commands: dict[str, list[str]] = {}
    mongodb_uri = None
    store = args.store
    measured: list[Child] = []
    if args.store == "mongodb":
        db, mongodb_uri = start_secantus(children, tmp, env)
        commands["secantusd"] = db.argv
        measured.append(db)
        store = "mongodb (SecantusDB test server, NOT MongoDB)"
    extra = ["--fetch-allow-private"]
    if args.delivery is not None:
        extra += ["--delivery", args.delivery]
    service, port = start_service(
        children,
        tmp,
        env,
        workers=args.workers,
        log_level=args.log_level,
        mongodb_uri=mongodb_uri,
        extra_args=extra,
    )
    measured.insert(0, service)
    commands["service"] = service.argv
    print(f"service: {' '.join(service.argv)}")
    receivers = start_receivers(children, tmp, env, args.receivers)
    commands["receivers"] = receivers.child.argv
    measured.append(receivers.child)

    admin = Admin("127.0.0.1", port, key)
    secret = setup_tenant(admin, TENANT, "grant")
    feed_secret = setup_feed_client(admin)
    head = request_head(TENANT, secret, "127.0.0.1", port)
    allocation = Allocation()
    burst = args.warmup + args.requests
    total = 2 * burst + PROBES + sum(round(r * args.duration) for r in args.rates)
    population = Population(seed, total, 0, "refresh_token", grant_ids=True)
    print(f"registering {total:,} refresh tokens, each with a grant_id of its own ...", flush=True)
    register(admin, TENANT, population)

    def tokens(n: int) -> list[str]:
        return [token_of(seed, i) for i in allocation.take(n)]

    # 1. Throughput, without and then with receivers, back to back.
    def throughput(name: str) -> Figures:
        warmup, timed = tokens(args.warmup), tokens(args.requests)
        return measure(name, "127.0.0.1", port, head, warmup, timed, args, measured)

    results = [throughput("0 receivers")]
    print(f"registering {args.receivers} push receivers ...", flush=True)
    register_receivers(admin, receivers)
    if args.receivers:
        asyncio.run(
            revoke_and_wait(
                port, head, seed, allocation.take(PROBES), receivers, args.drain_timeout
            )
        )
        asyncio.run(receivers.reset())
    else:
        allocation.take(PROBES)
    results.append(throughput(f"{args.receivers} receivers"))
    load_end = time.time()
    caught_up = asyncio.run(
        catch_up(receivers, burst * args.receivers, load_end, args.catch_up_timeout)
    )
    print(
        f"  receivers caught up {caught_up.seconds}s after the load "
        f"({caught_up.backlog_at_load_end:,} SETs behind at its end)",
        flush=True,
    )

    # 2. Latency at fixed rates.
    latency = asyncio.run(
        latency_phases(
            args,
            port=port,
            head=head,
            seed=seed,
            allocation=allocation,
            feed_secret=feed_secret,
            receivers=receivers,
            service=service,
        )
    )
    return report(args, info, store, commands, results, caught_up, latency)


def report(
    args: argparse.Namespace,
    info: dict[str, Any],
    store: str,
    commands: dict[str, list[str]],
    throughput: list[Figures],
    caught_up: CatchUp,
    latency: list[LatencyFigures],
) -> int:
    print()
    print(
        f"store: {store}; service workers={args.workers}, --log-level {args.log_level}, "
        f"--fetch-allow-private, --delivery {args.delivery or '(its default)'}"
    )
    print_table(throughput)
    base, loaded = throughput
    ratio = loaded.rps / base.rps if base.rps else None
    if ratio is not None:
        verdict = "MET" if ratio >= THROUGHPUT_AIM else "NOT MET"
        print(
            f"\nthroughput with {args.receivers} receivers / without = {ratio:.3f}  "
            f"(aim: >= {THROUGHPUT_AIM:.2f}: {verdict})"
        )
    print(
        f"catch-up: {caught_up.expected_sets:,} SETs of the burst; "
        f"{caught_up.backlog_at_load_end:,} not yet delivered at its end; the last arrived "
        f"{caught_up.seconds}s after it ({caught_up.sets_per_s or 0:,} SETs/s meanwhile)"
        f"{'' if caught_up.complete else '  INCOMPLETE (timed out)'}"
    )
    print_latency(latency)
    p99s = [f.push["p99_ms"] for f in latency] + [f.long_poll["p99_ms"] for f in latency]
    if p99s and all(p is not None for p in p99s):
        met = all(p < P99_AIM_MS for p in p99s)
        print(f"aim: p99 under {P99_AIM_MS:.0f} ms at every rate: {'MET' if met else 'NOT MET'}")

    ok = all(f.clean for f in throughput) and caught_up.complete
    ok = ok and all(f.complete for f in latency)
    for t in throughput:
        if not t.clean:
            loud(f"ERRORS against {t.target}: {t.statuses} {t.error_samples} {t.failures[:5]}")
    for lat in latency:
        if not lat.complete:
            loud(
                f"at {lat.rate:g}/s: {lat.ok}/{lat.sent} revoked ({lat.sender_errors}), SETs "
                f"{lat.sets_seen}/{lat.expected_sets}, long-poll {lat.long_poll_seen}/"
                f"{lat.long_poll_expected}: not every event arrived"
            )
    if not caught_up.complete:
        loud("the receivers did not catch up with the burst within --catch-up-timeout")

    if args.json:
        data = {
            "machine": info,
            "code": code_version(),
            "shared_machine_note": "service, receivers, load client and readers run on the "
            "same machine",
            "settings": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k not in ("jwt_access_tokens", "token_type")
            },
            "store": store,
            "commands": commands,
            "throughput": {
                "without_receivers": asdict(base),
                "with_receivers": asdict(loaded),
                "ratio": ratio,
                "catch_up": asdict(caught_up),
            },
            "latency": [asdict(f) for f in latency],
            "ok": ok,
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        print(f"\nJSON: {args.json}")
    return 0 if ok else 1


def print_latency(latency: Sequence[LatencyFigures]) -> None:
    print()
    header = (
        f"{'rate/s':>7}{'sent':>6}{'ok':>6}{'SETs seen':>17}{'push p50':>10}{'p99':>8}"
        f"{'max':>8}{'poll seen':>11}{'poll p50':>10}{'p99':>8}{'max':>8}{'last SET':>10}"
        f"{'svc CPU':>9}{'rcv CPU':>9}"
    )
    print(header)
    print("-" * len(header))
    for f in latency:
        last = f.last_set_after_last_revocation_s
        print(
            f"{f.rate:>7g}{f.sent:>6}{f.ok:>6}{f'{f.sets_seen:,}/{f.expected_sets:,}':>17}"
            f"{_ms(f.push['p50_ms']):>10}{_ms(f.push['p99_ms']):>8}{_ms(f.push['max_ms']):>8}"
            f"{f'{f.long_poll_seen}/{f.long_poll_expected}':>11}"
            f"{_ms(f.long_poll['p50_ms']):>10}{_ms(f.long_poll['p99_ms']):>8}"
            f"{_ms(f.long_poll['max_ms']):>8}{'n/a' if last is None else f'{last:.3f}s':>10}"
            f"{_pct(f.service_cpu_pct):>9}{_pct(f.receivers_cpu_pct):>9}"
        )
    print(
        "latencies in ms from the revocation's 200 to the event (push: at every receiver; "
        "poll: at the long-poll reader); last SET: after the last revocation's 200; CPU: % of "
        "one core over the phase and its drain."
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


# --- command line ---------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("positive revocations per second, e.g. 5,20")
    return rates


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time from a revocation's 200 to its event at push receivers and at a "
        "long-poll reader, and the revocation throughput push delivery costs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--store", choices=("sqlite", "mongodb"), default="sqlite")
    p.add_argument("--receivers", type=int, default=100, help="push receivers (one tenant)")
    p.add_argument("--rates", type=_rates, default=[5.0, 20.0], help="revocations/s, a phase each")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of each rate")
    p.add_argument(
        "--requests",
        type=int,
        default=20_000,
        help="revocations of each throughput phase: a few seconds each (shorter phases are "
        "too noisy here; the catch-up after them takes about 5 minutes)",
    )
    p.add_argument("--warmup", type=int, default=500, help="warm-up revocations of each")
    p.add_argument("--concurrency", type=int, default=32, help="connections of the load client")
    p.add_argument("--workers", type=int, default=1, help="service worker processes")
    p.add_argument("--log-level", default="info", help="the service's --log-level")
    p.add_argument(
        "--delivery",
        metavar="MODE",
        help="passed to serve as --delivery (where SETs are pushed from) [serve's default]",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for a latency phase's events after its last revocation",
    )
    p.add_argument(
        "--catch-up-timeout",
        type=float,
        default=1800.0,
        help="seconds to wait for the receivers to catch up with the throughput burst",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for each load phase")
    p.add_argument("--seed", type=int, default=None, help="token seed [random]")
    p.add_argument("--json", type=Path, help="also write the figures here")
    # What bench.py's ``measure`` reads besides the above.
    p.set_defaults(jwt_access_tokens=False, token_type="refresh_token")
    args = p.parse_args(argv)
    if min(args.requests, args.concurrency, args.workers) < 1 or args.warmup < 0:
        p.error("--requests, --concurrency and --workers must be positive")
    if args.receivers < 0 or args.duration <= 0:
        p.error("--receivers must be >= 0 and --duration positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return supervised(run, parse_args(argv), "revocation-bench-propagation-")


if __name__ == "__main__":
    sys.exit(main())
