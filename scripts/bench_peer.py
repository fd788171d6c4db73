"""Ours beside node-oidc-provider and the bare endpoint, and the sweeps (issue 12).

``scripts/bench.py --peer`` runs this (the other options are this script's). One run, with
bench.py's load client (raw sockets, keep-alive, one request in flight per connection,
``--concurrency`` 16 by default) and its CPU accounting, each request presenting a
different live token:

1. **Revocation**: ours (``POST /token/revoke``, ``client_secret_basic``, opaque
   registered tokens), node-oidc-provider (``bench_peer_node.py``: its RFC 7009
   ``/token/revocation``, opaque ``client_credentials`` access tokens minted at its
   start-up, its in-memory adapter; ``--peer-store sqlite``: a durable SQLite store of
   ours, ``peer/sqlite_adapter.mjs``, WAL and ``synchronous=FULL``) and the bare
   Starlette endpoint (form parsed).
2. **Introspection**: the same three, ``/token/introspect`` and ``/token/introspection``,
   each answering ``active: true``.
3. **Tenant-count sweep**: our revocation throughput with ``--sweep-tenants`` tenants on
   one origin (issuers ``http://127.0.0.1:PORT/t/<id>``, the benchmark tenant's sorting
   after the others'), the tenant named in each of the three forms: the issuer's path,
   the ``Tenant-ID`` header, the ``Issuer`` header.
4. **Token-count sweep**: our revocation throughput with ``--sweep-tokens`` tokens
   registered, on a service started afresh (a store holding those tokens only).

Ours keeps its store durable as always (SQLite by default, ``--store mongodb``: a
SecantusDB process). Before the figures it checks that revoked tokens introspect
inactive and introspected ones active at both servers, and that our service recorded
one event per revocation. ``--pin`` runs the load client on one CPU and the servers on
the others. The Markdown tables printed at the end go into ``docs/PERFORMANCE.md``.

    .venv/bin/python scripts/bench.py --peer --json peer.json
    .venv/bin/python scripts/bench.py --peer --sweep-tokens 10000,100000 --pin
    .venv/bin/python scripts/bench.py --peer --peer-store sqlite --skip tenants --skip tokens
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import bench_peer_node as node  # noqa: E402
from bench import (  # noqa: E402
    CLIENT_ID,
    Admin,
    BenchError,
    Child,
    Figures,
    LoadSpec,
    Population,
    build_requests,
    count_events,
    loud,
    machine,
    measure,
    print_table,
    register,
    request_head,
    setup_tenant,
    start_bare,
    start_secantus,
    start_service,
    supervised,
    token_of,
)
from bench_peer_report import FORMS, Point, render  # noqa: E402

BENCH_TENANT = "tbench"
"""As long as the sweep tenants' ids (``t00001`` …) and sorting after them."""
MAX_SWEEP_TENANTS = 99_999
SAMPLE = 20
"""Tokens introspected after a phase to check what it did."""
PEER_TITLE = node.PACKAGE
ENDPOINTS = {
    "revocation": ("/token/revoke", node.REVOCATION_PATH),
    "introspection": ("/token/introspect", node.INTROSPECTION_PATH),
}
"""Ours, the peer's (the bare endpoint has ours)."""


# --- pure parts ---------------------------------------------------------------------------


def sweep_tenant_id(i: int) -> str:
    return f"t{i:05d}"


def issuer_at(origin: str, tenant_id: str) -> str:
    """Every tenant's issuer on the one origin: a path prefix each."""
    return f"{origin}/t/{tenant_id}"


def form_head(form: str, tenant_id: str, secret: str, host: str, port: int) -> bytes:
    """A revocation's head naming the tenant by ``form`` (one of ``FORMS``); its issuer is
    ``issuer_at`` the request's origin."""
    if form == "path":
        path = f"/t/{tenant_id}/token/revoke"
        return request_head(tenant_id, secret, host, port, path=path, tenant_header=None)
    if form == "tenant-id":
        return request_head(tenant_id, secret, host, port)
    if form == "issuer":
        issuer = issuer_at(f"http://{host}:{port}", tenant_id)
        return request_head(issuer, secret, host, port, tenant_header="Issuer")
    raise ValueError(f"unknown form {form!r}")


def peer_head(secret: str, port: int, path: str) -> bytes:
    """The peer's: one issuer, no tenant to name."""
    return request_head("", secret, "127.0.0.1", port, path=path, tenant_header=None)


def pin_split(usable: Sequence[int]) -> tuple[set[int], set[int]]:
    """(the load client's CPU, the servers' CPUs): the first usable CPU, the rest."""
    cpus = sorted(usable)
    if len(cpus) < 2:
        raise ValueError(f"--pin needs at least 2 usable CPUs, this process has {len(cpus)}")
    return {cpus[0]}, set(cpus[1:])


def _counts(text: str) -> list[int]:
    try:
        counts = [int(c.replace("_", "")) for c in text.split(",") if c.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not counts or min(counts) < 1 or counts != sorted(set(counts)):
        raise argparse.ArgumentTypeError("positive counts in increasing order, e.g. 1,1000")
    return counts


SKIPPABLE = ("peer", "bare", "introspection", "tenants", "tokens")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench.py --peer",
        description="Revocation and introspection of ours beside node-oidc-provider and the "
        "bare endpoint in one run, then our revocation throughput against the number of "
        "tenants on one origin and the number of registered tokens.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--store", choices=("sqlite", "mongodb"), default="sqlite")
    p.add_argument(
        "--peer-store",
        choices=tuple(node.STORES),
        default="memory",
        help="the peer's store: its in-memory adapter, or SQLite (WAL, synchronous=FULL, "
        "better-sqlite3, built on first use) to compare with our durable store like for like",
    )
    p.add_argument("--requests", type=int, default=10_000, help="timed requests of each target")
    p.add_argument("--warmup", type=int, default=500, help="warm-up requests before each phase")
    p.add_argument("--concurrency", type=int, default=16, help="connections")
    p.add_argument(
        "--workers", type=int, default=1, help="processes of ours and of the bare endpoint"
    )
    p.add_argument(
        "--token-type",
        choices=("access_token", "refresh_token"),
        default="access_token",
        help="type of our registered tokens, and the hint sent to all three (the peer's "
        "tokens are client_credentials access tokens)",
    )
    p.add_argument(
        "--cascade",
        choices=("token", "grant", "subject", "spid", "cie"),
        default="grant",
        help="our tenant's revocation.cascade (each token has a grant_id of its own)",
    )
    p.add_argument(
        "--sweep-tenants",
        type=_counts,
        default=[1, 1_000, 10_000],
        help="tenant counts on one origin (the first count's throughput is the reference)",
    )
    p.add_argument(
        "--sweep-tokens",
        type=_counts,
        default=[10_000, 1_000_000],
        help="registered token counts (1,000,000 takes about a minute to register)",
    )
    p.add_argument(
        "--sweep-requests", type=int, default=5_000, help="timed revocations of each sweep phase"
    )
    p.add_argument(
        "--skip",
        action="append",
        choices=SKIPPABLE,
        default=[],
        help="leave out a target or a part (repeatable)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="load client on the first usable CPU, every server on the others",
    )
    p.add_argument(
        "--peer-dir",
        type=Path,
        help="install node-oidc-provider here [~/.cache/revocation-service-bench/peer-<lock hash>]",
    )
    p.add_argument("--log-level", default="info", help="our service's --log-level")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for each load phase")
    p.add_argument("--seed", type=int, default=None, help="token seed [random]")
    p.add_argument("--json", type=Path, help="also write every figure here")
    # What bench.py's ``measure`` reads besides the above.
    p.set_defaults(jwt_access_tokens=False)
    args = p.parse_args(argv)
    if min(args.requests, args.sweep_requests, args.concurrency, args.workers) < 1:
        p.error("--requests, --sweep-requests, --concurrency and --workers must be positive")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    if args.sweep_tenants[-1] > MAX_SWEEP_TENANTS:
        p.error(f"--sweep-tenants: at most {MAX_SWEEP_TENANTS:,}")
    per_phase = args.sweep_requests + args.warmup
    for k, count in enumerate(args.sweep_tokens, start=1):
        # Each phase revokes tokens of its own among those registered so far.
        if count < k * per_phase:
            p.error(
                f"--sweep-tokens: {count:,} registered tokens cannot serve {k} phases of "
                f"{per_phase:,} revocations (--sweep-requests + --warmup) each"
            )
    if args.pin:
        try:
            pin_split(sorted(os.sched_getaffinity(0)))
        except ValueError as exc:
            p.error(str(exc))
    return args


# --- tokens --------------------------------------------------------------------------------


@dataclass
class Tokens:
    """Registered tokens (``bench.token_of(seed, i)``), handed out once each: ``take``
    gives tokens no phase had yet, chosen at random among those registered so far."""

    seed: bytes
    token_type: str
    rng: random.Random
    registered: int = 0
    used: set[int] = field(default_factory=set)

    def register(self, admin: Admin, tenant_id: str, total: int) -> float:
        """Register tokens up to ``total`` for the tenant; the seconds it took."""
        population = Population(self.seed, total, 0, self.token_type, grant_ids=True)
        seconds = register(admin, tenant_id, population, start=self.registered)
        self.registered = total
        return seconds

    def take(self, n: int) -> list[str]:
        free = self.registered - len(self.used)
        if n > free:
            raise BenchError(f"{n} tokens wanted, {free} registered tokens left")
        picked: list[int] = []
        while len(picked) < n:
            i = self.rng.randrange(self.registered)
            if i not in self.used:
                self.used.add(i)
                picked.append(i)
        return [token_of(self.seed, i) for i in picked]


def introspected(host: str, port: int, head: bytes, tokens: Sequence[str], hint: str) -> list[Any]:
    """``active`` of each token's introspection (None: not a 200 with a JSON object)."""
    out: list[Any] = []
    for raw in build_requests(LoadSpec(host, port, head, list(tokens), 1, 10.0, hint)):
        with socket.create_connection((host, port), timeout=10.0) as sock:
            sock.sendall(raw)
            response = http.client.HTTPResponse(sock)
            response.begin()
            body = response.read()
        try:
            data = json.loads(body) if response.status == 200 else None
        except ValueError:
            data = None
        out.append(data.get("active") if isinstance(data, dict) else None)
    return out


# --- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def on_cpus(cpus: set[int] | None) -> Iterator[None]:
    """This process, and so what it starts meanwhile, on ``cpus`` (None: unchanged)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def affinity_of(child: Child) -> list[int]:
    return sorted(os.sched_getaffinity(child.process.pid))


@dataclass
class Run:
    """What every phase of one run shares."""

    args: argparse.Namespace
    tmp: Path
    children: list[Child]
    env: dict[str, str]
    server_cpus: set[int] | None
    commands: dict[str, list[str]] = field(default_factory=dict)
    pinned: dict[str, list[int]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Figures] = field(default_factory=list)

    def started(self, child: Child) -> None:
        self.commands[child.name] = child.argv
        print(f"{child.name}: {' '.join(child.argv)}", flush=True)
        if self.server_cpus is not None:
            self.pinned[child.name] = affinity_of(child)
            print(f"  pinned to CPUs {self.pinned[child.name]}", flush=True)

    def ours(self, directory: str) -> tuple[list[Child], int]:
        """Our service (and its SecantusDB) with a store of its own under ``directory``."""
        where = self.tmp / directory
        where.mkdir()
        measured: list[Child] = []
        mongodb_uri = None
        with on_cpus(self.server_cpus):
            if self.args.store == "mongodb":
                db, mongodb_uri = start_secantus(self.children, where, self.env)
                measured.append(db)
                self.started(db)
            service, port = start_service(
                self.children,
                where,
                self.env,
                workers=self.args.workers,
                log_level=self.args.log_level,
                mongodb_uri=mongodb_uri,
            )
        measured.insert(0, service)
        self.started(service)
        return measured, port

    def measure(
        self, name: str, port: int, head: bytes, tokens: list[str], measured: list[Child]
    ) -> Point:
        warmup, timed = tokens[: self.args.warmup], tokens[self.args.warmup :]
        f = measure(name, "127.0.0.1", port, head, warmup, timed, self.args, measured)
        self.figures.append(f)
        return Point.of(f)

    def check(self, what: str, actives: list[Any], expected: bool) -> None:
        ok = all(a is expected for a in actives)
        self.checks.append({"check": what, "ok": ok, "expected": expected, "seen": actives})
        shown = "active" if expected else "inactive"
        print(f"  check: {what}: {sum(a is expected for a in actives)}/{len(actives)} {shown}")
        if not ok:
            loud(f"CHECK FAILED: {what}: expected every one {shown}, saw {actives}")

    def events(self, admin: Admin, tenant_id: str, expected: int) -> None:
        events, taken = count_events(admin, tenant_id, expected)
        ok = events == expected and taken == expected
        self.checks.append(
            {"check": f"events of {tenant_id}", "ok": ok, "expected": expected, "seen": events}
        )
        print(
            f"  check: {tenant_id} has {events:,} events taking down {taken:,} credentials "
            f"(expected {expected:,})"
        )
        if not ok:
            loud(f"CHECK FAILED: {tenant_id}: {events} events / {taken} taken, {expected} expected")


# --- the run ---------------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def run(args: argparse.Namespace, tmp: Path, children: list[Child]) -> int:
    info = machine()
    load_before = loadavg()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    key = secrets.token_urlsafe(32)
    env["REVOCATION_ADMIN_KEY"] = key
    seed = (args.seed if args.seed is not None else secrets.randbits(63)).to_bytes(8, "big")
    skip = set(args.skip)
    print(
        f"machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"Python {info['python']}; code {info['code']}; loadavg {load_before}"
    )
    server_cpus = None
    if args.pin:
        load_cpus, server_cpus = pin_split(sorted(os.sched_getaffinity(0)))
        # The load processes are started by this one and inherit its CPUs.
        os.sched_setaffinity(0, load_cpus)
        print(
            f"pinned: load client (and this driver) to CPU {sorted(load_cpus)}, every server "
            f"to CPUs {sorted(server_cpus)}"
        )
    r = Run(args, tmp, children, env, server_cpus)

    peer_modules = peer_title = None
    if "peer" not in skip:
        peer_modules, fresh = node.install(args.peer_dir)
        version = node.installed_version(peer_modules)
        peer_title = node.title(version, args.peer_store)
        print(
            f"peer: {peer_title} in {peer_modules} ({'installed now' if fresh else 'cached'}), "
            f"node {node.node_version()}, NODE_ENV=production, one process"
        )
        if args.peer_store == "sqlite":
            driver = (
                f"{node.SQLITE_PACKAGE} {node.installed_version(peer_modules, node.SQLITE_PACKAGE)}"
            )
            print(f"  {driver}: building its native module unless built ...", flush=True)
            built = node.build_sqlite(peer_modules)
            print(f"  {driver}: {'built now' if built else 'built earlier'}", flush=True)

    main: dict[str, dict[str, Point]] = {}
    tenants: dict[int, dict[str, Point]] = {}
    token_sweep: dict[int, Point] = {}
    registration: dict[str, float] = {}

    measured, port = r.ours("ours")
    origin = f"http://127.0.0.1:{port}"
    admin = Admin("127.0.0.1", port, key)
    secret = setup_tenant(admin, BENCH_TENANT, args.cascade, issuer=issuer_at(origin, BENCH_TENANT))
    per_main = args.requests + args.warmup
    kinds = ["revocation"] + ([] if "introspection" in skip else ["introspection"])
    per_sweep = args.sweep_requests + args.warmup
    sweep_phases = 0 if "tenants" in skip else len(args.sweep_tenants) * len(FORMS)
    tokens = Tokens(seed, args.token_type, random.Random(seed))
    needed = per_main * len(kinds) + per_sweep * sweep_phases
    print(f"registering {needed:,} {args.token_type}s for {BENCH_TENANT} ...", flush=True)
    registration["ours"] = tokens.register(admin, BENCH_TENANT, needed)
    print(f"  took {registration['ours']:.1f}s", flush=True)
    revoked = 0

    peer = None
    if peer_modules is not None:
        with on_cpus(server_cpus):
            peer = node.start(
                children,
                tmp,
                env,
                modules=peer_modules,
                client_id=CLIENT_ID,
                secret=secret,
                tokens=per_main * len(kinds),
                store=args.peer_store,
            )
        r.started(peer.child)
    bare: tuple[Child, int] | None = None
    if "bare" not in skip:
        with on_cpus(server_cpus):
            bare = start_bare(children, tmp, env, workers=args.workers)
        r.started(bare[0])

    for kind in kinds:
        points = main[kind] = {}
        active = kind == "introspection"
        ours_path, peer_path = ENDPOINTS[kind]
        head = request_head(BENCH_TENANT, secret, "127.0.0.1", port, path=ours_path)
        ours_tokens = tokens.take(per_main)
        points["ours"] = r.measure(f"{kind} ours", port, head, ours_tokens, measured)
        revoked += 0 if active else per_main
        head = request_head(BENCH_TENANT, secret, "127.0.0.1", port, path="/token/introspect")
        seen = introspected("127.0.0.1", port, head, ours_tokens[-SAMPLE:], args.token_type)
        r.check(f"ours after {kind}", seen, active)
        if peer is not None:
            peer_tokens, peer.tokens = peer.tokens[:per_main], peer.tokens[per_main:]
            head = peer_head(secret, peer.port, peer_path)
            points["peer"] = r.measure(f"{kind} peer", peer.port, head, peer_tokens, [peer.child])
            head = peer_head(secret, peer.port, node.INTROSPECTION_PATH)
            seen = introspected("127.0.0.1", peer.port, head, peer_tokens[-SAMPLE:], "access_token")
            r.check(f"peer after {kind}", seen, active)
        if bare is not None:
            head = request_head(BENCH_TENANT, secret, "127.0.0.1", bare[1], path=ours_path)
            # The bare endpoint keeps no state: ours' tokens are the same bytes again.
            points["bare"] = r.measure(f"{kind} bare", bare[1], head, ours_tokens, [bare[0]])
    r.events(admin, BENCH_TENANT, revoked)
    # Idle as they would be, the peer and the bare endpoint still leave the sweeps alone.
    if peer is not None:
        peer.child.stop()
    if bare is not None:
        bare[0].stop()

    if "tenants" not in skip:
        others = 0
        for count in args.sweep_tenants:
            started = time.monotonic()
            while others < count - 1:
                others += 1
                tenant_id = sweep_tenant_id(others)
                body = {"issuer": issuer_at(origin, tenant_id)}
                admin.expect("PUT", f"/admin/v1/tenants/{tenant_id}", body, ok=(200, 201))
            if count > 1:
                took = time.monotonic() - started
                print(f"  {count:,} tenants: created in {took:.1f}s (admin API, one PUT each)")
            row = tenants[count] = {}
            for form in FORMS:
                head = form_head(form, BENCH_TENANT, secret, "127.0.0.1", port)
                name = f"{count:,} tenants, {form}"
                row[form] = r.measure(name, port, head, tokens.take(per_sweep), measured)
                revoked += per_sweep
        r.events(admin, BENCH_TENANT, revoked)
    for child in measured:
        child.stop()

    if "tokens" not in skip:
        measured, port = r.ours("tokens")
        admin = Admin("127.0.0.1", port, key)
        issuer = issuer_at(f"http://127.0.0.1:{port}", BENCH_TENANT)
        secret = setup_tenant(admin, BENCH_TENANT, args.cascade, issuer=issuer)
        head = request_head(BENCH_TENANT, secret, "127.0.0.1", port)
        tokens = Tokens(seed[::-1], args.token_type, random.Random(seed[::-1]))
        revoked = 0
        for count in args.sweep_tokens:
            print(f"registering tokens up to {count:,} ...", flush=True)
            registration[f"tokens {count}"] = seconds = tokens.register(admin, BENCH_TENANT, count)
            print(f"  took {seconds:.1f}s", flush=True)
            name = f"{count:,} tokens"
            token_sweep[count] = r.measure(name, port, head, tokens.take(per_sweep), measured)
            revoked += per_sweep
        r.events(admin, BENCH_TENANT, revoked)
        for child in measured:
            child.stop()

    load_after = loadavg()
    print()
    print(
        f"store: {args.store}; ours and bare: uvicorn loop=uvloop, http=httptools, "
        f"workers={args.workers}; ours --log-level {args.log_level}; tokens: {args.token_type}, "
        f"cascade {args.cascade!r}; peer store: {node.STORES[args.peer_store]}"
    )
    print(f"loadavg before {load_before}; after {load_after}")
    print_table(r.figures)
    print()
    tables = render(
        main,
        tenants,
        token_sweep,
        peer_title=peer_title or PEER_TITLE,
        workers=args.workers,
        connections=args.concurrency,
        store=args.store,
    )
    print(tables)

    ok = all(f.clean for f in r.figures) and all(c["ok"] for c in r.checks)
    for f in r.figures:
        if not f.clean:
            loud(
                f"ERRORS against {f.target}: {f.errors} of {f.requests} not 200 "
                f"({f.statuses}); samples: {f.error_samples}; failures: {f.failures[:5]}"
            )
    if args.json:
        report = {
            "machine": info,
            "loadavg": {"before": load_before, "after": load_after},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "peer": {
                "title": peer_title,
                "store": args.peer_store,
                "directory": str(peer_modules) if peer_modules else None,
            },
            "commands": r.commands,
            "pinned": r.pinned,
            "registration_s": registration,
            "main": {k: {t: asdict(p) for t, p in v.items()} for k, v in main.items()},
            "tenant_sweep": {
                str(n): {form: asdict(p) for form, p in row.items()} for n, row in tenants.items()
            },
            "token_sweep": {str(n): asdict(p) for n, p in token_sweep.items()},
            "checks": r.checks,
            "figures": [asdict(f) for f in r.figures],
            "tables": tables,
            "ok": ok,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {args.json}")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return supervised(run, parse_args(argv), "revocation-bench-peer-")


if __name__ == "__main__":
    sys.exit(main())
