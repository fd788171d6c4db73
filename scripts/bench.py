"""Revocations per second and latency, against a bare Starlette form endpoint.

One run measures two targets under the same uvicorn settings (uvloop, httptools, access
log off, the same worker count) with the same load and the same request bytes:

1. ``POST /token/revoke`` of the revocation service, each request revoking a different
   registered token (so every request does real work: find, cascade, commit);
2. ``POST /token/revoke`` of ``scripts/bench_bare_app.py``: read and parse the same form,
   answer 200. The revocation figure is reported as a ratio of this one.

By default the script starts everything itself and stops it afterwards: the service
(``python -m app serve --no-tenants`` on a free loopback port with a temporary data
directory, and for ``--store mongodb`` a SecantusDB server process), creates a tenant and
a ``client_secret_basic`` client through the admin API, registers ``--tokens`` tokens in
batches of 10,000 (not timed), warms up on tokens that are not counted, then runs the
timed load. ``--url`` measures an already-running service instead (``--admin-key``
needed); the bare endpoint is still started locally.

The load client is a lean asyncio HTTP/1.1 client on raw sockets (keep-alive, one request
in flight per connection, prebuilt request bytes) in a process of its own. It shares the
machine with the servers: on a 2-core machine, its CPU is CPU the servers do not get.

    python scripts/bench.py --tokens 10000 --requests 10000 --json out.json
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlsplit

SCRIPTS = Path(__file__).resolve().parent
BATCH = 10_000
"""Credentials per registration request (the admin API's limit)."""
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
ADMIN_TIMEOUT_S = 600.0
"""One admin request (a 10,000-credential batch included)."""
CLIENT_READY_TIMEOUT_S = 60.0
"""The load process: start, build the requests, open its connections."""
RESULT_GRACE_S = 60.0
MAX_ERROR_SAMPLES = 5
MAX_WARMUP_FAILURES = 0.1
"""More warm-up requests than this share failing: the target is broken, stop there."""
EVENTS_PAGE = 1000
CLIENT_ID = "bench-client"
TOKEN_LIFETIME_S = 30 * 86_400


# --- processes we start ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Child:
    """A server process in a session of its own (Ctrl-C reaches us, not it); stopped by
    signalling its whole process group, so uvicorn's worker processes go too."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float | None:
        """User + system CPU of every live process of its session (Linux /proc)."""
        return session_cpu_seconds(self.process.pid)


def session_stats(sid: int) -> dict[int, list[str]] | None:
    """The ``/proc/PID/stat`` fields after ``(comm)`` (state ppid pgrp session ...
    utime stime ...) of every live process of session ``sid``; None without ``/proc``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    found: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            found[int(entry.name)] = fields
    return found


def session_cpu_seconds(sid: int) -> float | None:
    stats = session_stats(sid)
    if stats is None:
        return None
    # utime and stime: fields 14 and 15 of the whole line.
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in stats.values())
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int, int] | None:
    """(process time, interrupt time, steal) of the whole machine so far, in jiffies, from
    /proc/stat. Interrupt time (loopback TCP's softirqs mostly) is charged to no process."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first[1:9])
    return user + nice + system, irq + softirq, steal


def spawn(
    children: list[Child],
    name: str,
    argv: list[str],
    log_path: Path,
    *,
    cwd: Path,
    env: dict[str, str],
) -> Child:
    """Start a process and add it to ``children`` at once, before anything can fail, so
    that it is stopped whatever happens next (a failed start-up included)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    child = Child(name, argv, process, log_path)
    children.append(child)
    return child


class BenchError(Exception):
    pass


def wait_http_ok(child: Child, host: str, port: int, path: str = "/healthz") -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for _ in range(int(STARTUP_TIMEOUT_S / 0.05) + 1):
        if not child.running:
            raise BenchError(f"{child.name} exited {child.process.returncode}:\n{child.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(host, port, timeout=1.0)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise BenchError(
        f"{child.name} did not answer {path} in {STARTUP_TIMEOUT_S}s:\n{child.log_tail()}"
    )


def wait_listening(child: Child, host: str, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for _ in range(int(STARTUP_TIMEOUT_S / 0.05) + 1):
        if not child.running:
            raise BenchError(f"{child.name} exited {child.process.returncode}:\n{child.log_tail()}")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise BenchError(f"{child.name} did not listen in {STARTUP_TIMEOUT_S}s:\n{child.log_tail()}")


def start_secantus(children: list[Child], tmp: Path, env: dict[str, str]) -> tuple[Child, str]:
    port = free_port()
    config = tmp / "secantusd.toml"
    # An explicit config also keeps a stray ./secantusd.toml out; the TTL monitor is off
    # (the benchmark's tokens expire in 30 days anyway).
    config.write_text("[storage]\nttl_sweep_seconds = 0\n")
    argv = [
        sys.executable, "-m", "secantus", "--config", str(config), "--host", "127.0.0.1",
        "--port", str(port), "--storage-path", str(tmp / "secantus-data"),
        "--log-level", "WARNING",
    ]  # fmt: skip
    child = spawn(children, "secantusd", argv, tmp / "secantusd.log", cwd=tmp, env=env)
    wait_listening(child, "127.0.0.1", port)
    return child, f"mongodb://127.0.0.1:{port}/?replicaSet=secantus"


def start_service(
    children: list[Child],
    tmp: Path,
    env: dict[str, str],
    *,
    workers: int,
    log_level: str,
    mongodb_uri: str | None,
    extra_args: Sequence[str] = (),
) -> tuple[Child, int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(tmp / "data"), "--no-tenants", "--workers", str(workers),
        "--log-level", log_level, "--log-json", "--plugins-dir", str(SCRIPTS.parent / "plugins"),
    ]  # fmt: skip
    if mongodb_uri:
        argv += ["--mongodb-uri", mongodb_uri]
    argv += extra_args
    child = spawn(children, "revocation-service", argv, tmp / "service.log", cwd=tmp, env=env)
    wait_http_ok(child, "127.0.0.1", port)
    return child, port


def start_bare(
    children: list[Child], tmp: Path, env: dict[str, str], *, workers: int
) -> tuple[Child, int]:
    port = free_port()
    argv = [
        sys.executable, str(SCRIPTS / "bench_bare_app.py"), "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    child = spawn(children, "bare-starlette", argv, tmp / "bare.log", cwd=tmp, env=env)
    wait_http_ok(child, "127.0.0.1", port)
    return child, port


# --- the admin API (setup, not timed) ---------------------------------------------------


class Admin:
    """Admin API calls, a connection each: they are few, and uvicorn closes a keep-alive
    connection left idle for 5 s (as during a load phase)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=ADMIN_TIMEOUT_S)
        try:
            conn.request(method, path, body=payload, headers=self.headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise BenchError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return response.status, data

    def expect(self, method: str, path: str, body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        status, data = self.call(method, path, body)
        if status not in ok:
            raise BenchError(f"{method} {path} → {status}: {str(data)[:500]}")
        return data


def token_of(seed: bytes, i: int) -> str:
    """Token ``i``: 43 characters of base64url, like a 256-bit opaque token."""
    digest = hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Population:
    seed: bytes
    tokens: int
    warmup: int
    token_type: str
    grant_ids: bool

    @property
    def total(self) -> int:
        return self.tokens + self.warmup

    def credential(self, i: int, now: int) -> dict[str, Any]:
        c: dict[str, Any] = {
            "token": token_of(self.seed, i),
            "type": self.token_type,
            "client_id": CLIENT_ID,
            "exp": now + TOKEN_LIFETIME_S,
            "iat": now,
            "sub": f"user-{i}",
        }
        if self.grant_ids:
            c["grant_id"] = f"grant-{i}"
        return c


# --- JWTs: client assertions (RFC 7523) and JWT access tokens (RFC 9068) ----------------

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Jose:
    """The keys of a run that uses JWTs (``--client-auth private_key_jwt``,
    ``--jwt-access-tokens``); signing happens before the timed phase, never in it."""

    client_alg: str | None = None
    client_key: Any = None
    tenant_key: Any = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Jose:
        jose = cls()
        if args.client_auth == "private_key_jwt":
            jose.client_alg = args.assertion_alg
            jose.client_key = new_key(args.assertion_alg)
        if args.jwt_access_tokens:
            jose.tenant_key = new_key("ES256")
        return jose

    def assertions(self, audience: str, n: int) -> list[str] | None:
        """``n`` client assertions, each with its own ``jti``, as form parameters."""
        if self.client_key is None or self.client_alg is None:
            return None
        import jwt

        now = int(time.time())
        out = []
        for _ in range(n):
            claims = {
                "iss": CLIENT_ID,
                "sub": CLIENT_ID,
                "aud": audience,
                "iat": now,
                "exp": now + 280,
                "jti": secrets.token_urlsafe(16),
            }
            assertion = jwt.encode(
                claims, self.client_key, self.client_alg, headers={"kid": "bench-client"}
            )
            out.append(
                f"&client_assertion_type={quote(ASSERTION_TYPE)}&client_assertion={assertion}"
            )
        return out

    def access_tokens(self, issuer: str, seed: bytes, first: int, n: int) -> list[str]:
        """JWT access tokens ``first`` … ``first + n - 1`` of the tenant (not registered)."""
        import jwt

        now = int(time.time())
        return [
            jwt.encode(
                {
                    "iss": issuer,
                    "client_id": CLIENT_ID,
                    "sub": f"user-{i}",
                    "grant_id": f"grant-{i}",
                    "jti": token_of(seed, i)[:22],
                    "iat": now,
                    "exp": now + TOKEN_LIFETIME_S,
                    "scope": "read",
                },
                self.tenant_key,
                "ES256",
                headers={"kid": "bench-tenant", "typ": "at+jwt"},
            )
            for i in range(first, first + n)
        ]


def new_key(alg: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_jwks(key: Any, alg: str, kid: str) -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    algorithm = RSAAlgorithm if alg == "RS256" else ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": alg}]}


def issuer_of(tenant_id: str) -> str:
    return f"http://{tenant_id}.bench.invalid"


def setup_tenant(
    admin: Admin, tenant_id: str, cascade: str, jose: Jose | None = None, issuer: str | None = None
) -> str:
    jose = jose or Jose()
    settings: dict[str, Any] = {
        "issuer": issuer or issuer_of(tenant_id),
        "revocation": {"cascade": cascade},
    }
    if jose.tenant_key is not None:
        jwks = public_jwks(jose.tenant_key, "ES256", "bench-tenant")
        settings["jwt_access_tokens"] = {"jwks": jwks}
    admin.expect("PUT", f"/admin/v1/tenants/{tenant_id}", settings, ok=(200, 201))
    secret = secrets.token_urlsafe(32)
    client: dict[str, Any] = {
        "type": "confidential",
        "token_endpoint_auth_method": "client_secret_basic",
        "client_secret": secret,
        "scope": "introspect",
    }
    if jose.client_key is not None and jose.client_alg is not None:
        del client["client_secret"]
        client["token_endpoint_auth_method"] = "private_key_jwt"
        client["jwks"] = public_jwks(jose.client_key, jose.client_alg, "bench-client")
    admin.expect("PUT", f"/admin/v1/tenants/{tenant_id}/clients/{CLIENT_ID}", client, ok=(200, 201))
    return secret


SANDBOXED_PRE_REVOKE = b"""
def pre_revoke(context, plan):
    return None
"""
IN_PROCESS_PLUGINS = [
    {"name": "confidential_only", "config": {}},
    {"name": "revoke_veto", "config": {"clients": ["no-such-client"]}},
    {"name": "response_attributes", "config": {"attributes": {"revoked": True}}},
]


@dataclass(frozen=True)
class Phase:
    """One tenant of the run, with the plugins it enables (``--plugins``)."""

    name: str
    tenant_suffix: str
    enabled: list[dict[str, Any]] = field(default_factory=list)
    upload: bytes | None = None
    service_args: tuple[str, ...] | None = None
    """``--operations``: the phase runs on a service started afresh with these flags."""


PLUGIN_PHASES = (
    Phase("no plugin", ""),
    Phase("3 in-process plugins", "-inproc", IN_PROCESS_PLUGINS),
    Phase("1 sandboxed pre_revoke", "-sandbox", [{"name": "noop"}], SANDBOXED_PRE_REVOKE),
)


OPERATIONS_PHASES = (
    Phase(
        "metrics and limits off",
        "",
        service_args=(
            "--no-metrics",
            "--rate-limit-per-client",
            "0",
            "--rate-limit-per-address",
            "0",
        ),
    ),
    Phase("metrics and limits on", "-ops", service_args=()),
)


def enable_plugins(admin: Admin, tenant_id: str, phase: Phase) -> None:
    if phase.upload is not None:
        conn = http.client.HTTPConnection(admin.host, admin.port, timeout=ADMIN_TIMEOUT_S)
        try:
            headers = {**admin.headers, "Content-Type": "text/x-python"}
            conn.request(
                "PUT", f"/admin/v1/tenants/{tenant_id}/plugins/noop", phase.upload, headers
            )
            response = conn.getresponse()
            if response.status != 201:
                raise BenchError(f"plugin upload → {response.status}: {response.read()[:300]!r}")
        finally:
            conn.close()
    if phase.enabled:
        body = {"plugins": {"enabled": phase.enabled}}
        admin.expect("PATCH", f"/admin/v1/tenants/{tenant_id}", body)


def register(admin: Admin, tenant_id: str, population: Population, start: int = 0) -> float:
    """Register every token from ``start`` on (timed tokens, then warm-up tokens); the
    seconds it took."""
    started = time.monotonic()
    batches = math.ceil((population.total - start) / BATCH)
    now = int(time.time())
    for b in range(batches):
        first, last = start + b * BATCH, min(start + (b + 1) * BATCH, population.total)
        body = [population.credential(i, now) for i in range(first, last)]
        data = admin.expect(
            "POST", f"/admin/v1/tenants/{tenant_id}/credentials", body, ok=(200, 201)
        )
        if data.get("registered") != last - first:
            raise BenchError(f"registration batch {b}: {data}")
        if batches > 10 and (b + 1) % 10 == 0:
            rate = (last - start) / (time.monotonic() - started)
            print(f"  registered {last:,} / {population.total:,} ({rate:,.0f}/s)", flush=True)
    return time.monotonic() - started


def count_events(admin: Admin, tenant_id: str, expected: int) -> tuple[int, int]:
    """(events, credentials they took down) of the tenant, paging through all of them."""
    events = taken = 0
    after = 0
    for _ in range(expected // EVENTS_PAGE + 3):
        data = admin.expect(
            "GET", f"/admin/v1/tenants/{tenant_id}/events?after={after}&limit={EVENTS_PAGE}"
        )
        page = data["events"]
        events += len(page)
        taken += sum(int(e.get("count") or 0) for e in page)
        if len(page) < EVENTS_PAGE:
            break
        after = data["next"]
    return events, taken


# --- the load client (its own process) -------------------------------------------------


@dataclass
class LoadSpec:
    host: str
    port: int
    head: bytes
    """Request line and headers up to (without) ``Content-Length``."""
    tokens: list[str]
    concurrency: int
    timeout_s: float
    hint: str = "refresh_token"
    extras: list[str] | None = None
    """Per request: more form parameters (``&name=value…``), e.g. a client assertion."""


@dataclass
class LoadResult:
    requests: int
    completed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    latencies_ns: bytes = b""
    timed_out: bool = False


class ProtocolError(Exception):
    pass


def build_requests(spec: LoadSpec) -> list[bytes]:
    out = []
    for i, token in enumerate(spec.tokens):
        body = f"token={quote(token, safe='')}&token_type_hint={spec.hint}".encode()
        if spec.extras is not None:
            body += spec.extras[i].encode()
        out.append(spec.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


async def _one_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    work: Iterator[int],
    requests: list[bytes],
    latencies: array.array[int],
    statuses: array.array[int],
    samples: list[str],
) -> None:
    """Send the next request, read its response whole, repeat: one in flight."""
    clock = time.perf_counter_ns
    for i in work:  # bounded: ``work`` is a shared iterator over a range
        started = clock()
        writer.write(requests[i])
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        k = lower.find(b"\r\ncontent-length:")
        if k < 0:
            raise ProtocolError(f"no Content-Length in {head[:200]!r}")
        length = int(lower[k + 17 : lower.index(b"\r\n", k + 17)])
        body = await reader.readexactly(length) if length else b""
        latencies[i] = clock() - started
        statuses[i] = status
        if status != 200 and len(samples) < MAX_ERROR_SAMPLES:
            samples.append(f"{status} {body[:300]!r}")
        if b"\r\nconnection: close" in lower:
            raise ProtocolError("the server closed the connection")


async def _load(spec: LoadSpec, conn: Connection) -> LoadResult:
    requests = build_requests(spec)
    n = len(requests)
    result = LoadResult(requests=n)
    latencies = array.array("q", bytes(8 * n))
    statuses = array.array("H", bytes(2 * n))
    streams = []
    try:
        for _ in range(spec.concurrency):
            streams.append(
                await asyncio.wait_for(asyncio.open_connection(spec.host, spec.port), 10.0)
            )
            sock = streams[-1][1].get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send(("ready", None))
        loop = asyncio.get_running_loop()
        go = await loop.run_in_executor(None, conn.poll, CLIENT_READY_TIMEOUT_S)
        if not go:
            raise BenchError("no go from the parent")
        conn.recv()
        work = iter(range(n))
        cpu0, t0 = time.process_time(), time.perf_counter()
        try:
            async with asyncio.timeout(spec.timeout_s):
                outcomes = await asyncio.gather(
                    *(
                        _one_connection(
                            r, w, work, requests, latencies, statuses, result.error_samples
                        )
                        for r, w in streams
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            result.timed_out = True
            outcomes = []
        result.wall_s = time.perf_counter() - t0
        result.client_cpu_s = time.process_time() - cpu0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                result.failures.append(f"{type(outcome).__name__}: {outcome}")
    finally:
        for _, w in streams:
            w.close()
    done = [i for i in range(n) if statuses[i]]
    result.completed = len(done)
    result.statuses = dict(Counter(statuses[i] for i in done))
    result.latencies_ns = array.array("q", (latencies[i] for i in done)).tobytes()
    return result


def _client_main(conn: Connection, spec: LoadSpec) -> None:
    """Entry point of the load process."""
    try:
        try:
            import uvloop  # optional: the servers use it too

            result = uvloop.run(_load(spec, conn))
        except ImportError:
            result = asyncio.run(_load(spec, conn))
        conn.send(("result", result))
    except BaseException as exc:  # reported to the parent, which decides
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass
class CpuUse:
    servers: dict[str, float]
    """CPU seconds of each measured server's process tree during the phase."""
    machine_busy: float | None = None
    """CPU seconds every process of the machine used, ours included."""
    irq: float | None = None
    """CPU seconds in interrupt handlers (loopback TCP, mostly ours)."""
    steal: float | None = None
    """CPU seconds the hypervisor gave to other guests."""


def run_load(spec: LoadSpec, measured: Sequence[Child]) -> tuple[LoadResult, CpuUse]:
    """Run the load in a process of its own; also the CPU the measured server process
    trees, and the whole machine, used meanwhile."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_client_main, args=(child, spec), name="bench-load", daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(CLIENT_READY_TIMEOUT_S):
            raise BenchError("the load process did not get ready")
        kind, payload = parent.recv()
        if kind != "ready":
            raise BenchError(f"load process: {payload}")
        before = {c.name: c.cpu_seconds() for c in measured}
        ticks_before = machine_ticks()
        parent.send("go")
        if not parent.poll(spec.timeout_s + RESULT_GRACE_S):
            raise BenchError("the load process did not report")
        kind, payload = parent.recv()
        ticks_after = machine_ticks()
        after = {c.name: c.cpu_seconds() for c in measured}
        if kind != "result":
            raise BenchError(f"load process: {payload}")
        cpu = CpuUse(
            {
                name: b_after - b_before
                for name, b_before in before.items()
                if b_before is not None and (b_after := after[name]) is not None
            }
        )
        if ticks_before is not None and ticks_after is not None:
            hz = os.sysconf("SC_CLK_TCK")
            cpu.machine_busy = (ticks_after[0] - ticks_before[0]) / hz
            cpu.irq = (ticks_after[1] - ticks_before[1]) / hz
            cpu.steal = (ticks_after[2] - ticks_before[2]) / hz
        return payload, cpu
    finally:
        parent.close()
        process.join(10)
        if process.is_alive():
            process.terminate()
            process.join(10)
        if process.is_alive():
            process.kill()
            process.join()


# --- figures -----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[int], p: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return math.nan
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return float(sorted_values[k])


@dataclass
class Figures:
    target: str
    requests: int
    completed: int
    errors: int
    rps: float
    """200 responses per second of the timed phase."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float
    client_cpu_pct: float
    server_cpu_pct: dict[str, float]
    other_cpu_pct: float | None
    """CPU the rest of the machine used meanwhile (100% = one core): other processes'
    load, which the servers and the client did not get."""
    irq_pct: float | None
    steal_pct: float | None
    statuses: dict[str, int]
    error_samples: list[str]
    failures: list[str]
    timed_out: bool

    @property
    def clean(self) -> bool:
        return self.errors == 0 and not self.failures and not self.timed_out


def figures(target: str, result: LoadResult, cpu: CpuUse) -> Figures:
    lat = sorted(array.array("q", result.latencies_ns))
    ok = result.statuses.get(200, 0)
    wall = result.wall_s or math.nan
    other = None
    if cpu.machine_busy is not None:
        ours = sum(cpu.servers.values()) + result.client_cpu_s
        other = max(0.0, 100 * (cpu.machine_busy - ours) / wall)
    return Figures(
        target=target,
        requests=result.requests,
        completed=result.completed,
        errors=result.requests - ok,
        rps=ok / wall,
        p50_ms=percentile(lat, 50) / 1e6,
        p90_ms=percentile(lat, 90) / 1e6,
        p99_ms=percentile(lat, 99) / 1e6,
        max_ms=(lat[-1] / 1e6) if lat else math.nan,
        wall_s=result.wall_s,
        client_cpu_pct=100 * result.client_cpu_s / wall,
        server_cpu_pct={name: 100 * s / wall for name, s in cpu.servers.items()},
        other_cpu_pct=other,
        irq_pct=None if cpu.irq is None else 100 * cpu.irq / wall,
        steal_pct=None if cpu.steal is None else 100 * cpu.steal / wall,
        statuses={str(k): v for k, v in sorted(result.statuses.items())},
        error_samples=result.error_samples,
        failures=result.failures,
        timed_out=result.timed_out,
    )


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "code": code_version(),
    }


def code_version() -> str:
    """The commit measured, and whether the working tree had uncommitted changes."""
    git = shutil.which("git")
    if git is None:
        return "unknown"

    def output(*args: str) -> str:
        done = subprocess.run(
            [git, *args], cwd=SCRIPTS.parent, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        head = output("rev-parse", "--short", "HEAD")
        dirty = output("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def print_table(rows: Sequence[Figures]) -> None:
    header = (
        f"{'target':<24}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}{'client':>8}{'irq':>6}{'other':>7}  server CPU"
    )
    print(header)
    print("-" * (len(header) + 24))
    for f in rows:
        server = ", ".join(f"{k} {v:.0f}%" for k, v in f.server_cpu_pct.items()) or "n/a"
        other = "n/a" if f.other_cpu_pct is None else f"{f.other_cpu_pct:.0f}%"
        irq = "n/a" if f.irq_pct is None else f"{f.irq_pct:.0f}%"
        print(
            f"{f.target:<24}{f.rps:>10,.0f}{f.p50_ms:>9.2f}{f.p90_ms:>9.2f}{f.p99_ms:>9.2f}"
            f"{f.max_ms:>9.1f}{f.errors:>8}{f.client_cpu_pct:>7.0f}%{irq:>6}{other:>7}  {server}"
        )
    print(
        "CPU columns: % of one core during the timed phase. client: the load process; irq: "
        "interrupt handlers (loopback TCP); other: every other process on the machine "
        "(load the servers did not get)."
    )


def loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


# --- the run -------------------------------------------------------------------------------


def request_head(
    tenant_id: str,
    secret: str | None,
    host: str,
    port: int,
    *,
    path: str = "/token/revoke",
    tenant_header: str | None = "Tenant-ID",
) -> bytes:
    """The request's head; ``secret`` None: the client authenticates with an assertion.
    ``tenant_header`` names the header whose value is ``tenant_id`` (``Issuer``: an issuer
    URL); None: no such header, the path names the tenant or there is none."""
    authorization = ""
    if secret is not None:
        raw = f"{quote(CLIENT_ID, safe='')}:{quote(secret, safe='')}".encode()
        authorization = f"Authorization: Basic {base64.b64encode(raw).decode()}\r\n"
    tenant = f"{tenant_header}: {tenant_id}\r\n" if tenant_header else ""
    return (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"{tenant}"
        f"{authorization}"
        f"Content-Type: application/x-www-form-urlencoded\r\n"
    ).encode()


def measure(
    name: str,
    host: str,
    port: int,
    head: bytes,
    warmup_tokens: list[str],
    timed_tokens: list[str],
    args: argparse.Namespace,
    measured: Sequence[Child],
    extras: tuple[list[str] | None, list[str] | None] = (None, None),
) -> Figures:
    hint = "access_token" if args.jwt_access_tokens else args.token_type
    if warmup_tokens:
        spec = LoadSpec(
            host, port, head, warmup_tokens, args.concurrency, args.timeout, hint, extras[0]
        )
        warm, _ = run_load(spec, measured)
        bad = warm.requests - warm.statuses.get(200, 0)
        print(f"  {name}: warm-up {warm.requests} requests, {bad} not 200", flush=True)
        if bad > warm.requests * MAX_WARMUP_FAILURES:
            raise BenchError(
                f"{name}: {bad} of {warm.requests} warm-up requests failed, not running the "
                f"timed phase: {warm.error_samples or warm.failures}"
            )
        if bad:
            loud(f"{name}: {bad} warm-up requests failed: {warm.error_samples or warm.failures}")
    spec = LoadSpec(host, port, head, timed_tokens, args.concurrency, args.timeout, hint, extras[1])
    result, cpu = run_load(spec, measured)
    f = figures(name, result, cpu)
    print(f"  {name}: {f.completed:,} requests in {f.wall_s:.2f}s", flush=True)
    return f


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Revocations per second and p50/p99 latency, as a ratio of a bare "
        "Starlette endpoint parsing the same form under the same uvicorn settings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--store",
        choices=("sqlite", "mongodb"),
        default="sqlite",
        help="store of the service started here (mongodb: a SecantusDB process)",
    )
    p.add_argument(
        "--tokens", type=int, default=10_000, help="tokens registered before the run (not timed)"
    )
    p.add_argument(
        "--requests",
        type=int,
        default=10_000,
        help="timed revocations, each of a different registered token",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=500,
        help="warm-up requests (on extra tokens, registered beside --tokens)",
    )
    p.add_argument("--concurrency", type=int, default=32, help="connections")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument(
        "--cascade",
        choices=("token", "grant", "subject", "spid", "cie"),
        default="grant",
        help="the tenant's revocation.cascade policy",
    )
    p.add_argument(
        "--grant-ids",
        choices=("own", "none"),
        default="own",
        help="each token with a grant_id of its own, or none",
    )
    p.add_argument(
        "--token-type",
        choices=("refresh_token", "access_token"),
        default="refresh_token",
        help="type of the registered tokens",
    )
    p.add_argument(
        "--log-level",
        default="info",
        help="the service's --log-level (info: one JSON line per request, as in production)",
    )
    p.add_argument("--url", help="measure this running service (http://host:port) instead")
    p.add_argument(
        "--admin-key",
        default=os.environ.get("REVOCATION_ADMIN_KEY"),
        help="operator key for --url [$REVOCATION_ADMIN_KEY]",
    )
    p.add_argument(
        "--keep-tenant", action="store_true", help="with --url: leave the benchmark tenant in place"
    )
    p.add_argument("--no-bare", action="store_true", help="skip the bare endpoint")
    p.add_argument(
        "--plugins",
        action="store_true",
        help="three tenants, one phase each: no plugin, three in-process plugins, one "
        "sandboxed pre_revoke (the same tokens registered in each)",
    )
    p.add_argument(
        "--operations",
        action="store_true",
        help="two phases, each on a service of its own: metrics and abuse limits off "
        "(--no-metrics, --rate-limit-per-* 0), then on (issue 9's cost, in one run)",
    )
    p.add_argument(
        "--client-auth",
        choices=("client_secret_basic", "private_key_jwt"),
        default="client_secret_basic",
        help="how the client authenticates (private_key_jwt: a fresh RFC 7523 assertion per "
        "request, signed before the timed phase)",
    )
    p.add_argument(
        "--assertion-alg",
        choices=("ES256", "RS256"),
        default="ES256",
        help="the client assertions' algorithm (RS256: a 2048-bit key)",
    )
    p.add_argument(
        "--jwt-access-tokens",
        action="store_true",
        help="revoke JWT access tokens (RFC 9068, ES256, signed with the tenant's key, not "
        "registered) instead of registered tokens",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds allowed for each load phase"
    )
    p.add_argument("--seed", type=int, default=None, help="token seed [random]")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--propagation",
        action="store_true",
        help="run scripts/bench_propagation.py instead (push and long-poll latency, the "
        "throughput push delivery costs); the other options are its own: see its --help",
    )
    p.add_argument(
        "--peer",
        action="store_true",
        help="run scripts/bench_peer.py instead (ours beside node-oidc-provider and the bare "
        "endpoint, the tenant-count and token-count sweeps); the other options are its own",
    )
    args = p.parse_args(argv)
    if args.tokens < args.requests:
        p.error("--tokens must be at least --requests: every request revokes its own token")
    if min(args.requests, args.concurrency, args.workers) < 1 or args.warmup < 0:
        p.error("--requests, --concurrency and --workers must be positive")
    if args.operations and (args.url or args.plugins):
        p.error("--operations starts its own services: not with --url or --plugins")
    if args.url:
        if not args.admin_key:
            p.error("--url needs --admin-key (or REVOCATION_ADMIN_KEY)")
        if urlsplit(args.url).scheme != "http":
            p.error("--url: http only (the load client speaks plain HTTP/1.1)")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--propagation" in argv:
        # Issue 11's measurement has a script of its own; the other options are its own.
        import bench_propagation

        return bench_propagation.main([a for a in argv if a != "--propagation"])
    if "--peer" in argv:
        # Issue 12's comparison with node-oidc-provider, and the sweeps: a script of its own.
        import bench_peer

        return bench_peer.main([a for a in argv if a != "--peer"])
    return supervised(run, parse_args(argv), "revocation-bench-")


def supervised(
    body: Callable[[argparse.Namespace, Path, list[Child]], int],
    args: argparse.Namespace,
    prefix: str,
) -> int:
    """``body(args, tmp, children)`` in a temporary directory, every process it starts
    stopped and the directory removed whatever happens; its exit status."""
    # Ctrl-C and SIGTERM both unwind through the finally that stops every process, also
    # when the script was started with SIGINT ignored (as a background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    children: list[Child] = []
    try:
        return body(args, tmp, children)
    except BenchError as exc:
        loud(f"BENCHMARK FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        loud("interrupted: stopping the processes started")
        return 130
    finally:
        for child in reversed(children):
            child.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, children: list[Child]) -> int:
    info = machine()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    seed = (args.seed if args.seed is not None else secrets.randbits(63)).to_bytes(8, "big")
    population = Population(
        seed, args.tokens, args.warmup, args.token_type, args.grant_ids == "own"
    )
    rng = random.Random(seed)
    timed_idx = rng.sample(range(args.tokens), args.requests)
    timed_tokens = [token_of(seed, i) for i in timed_idx]
    warmup_tokens = [token_of(seed, args.tokens + i) for i in range(args.warmup)]

    print(
        f"machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}, "
        f"Python {info['python']}; code {info['code']}"
    )
    print(
        "NOTE: the load client, the servers (and the SecantusDB server) share this machine;"
        " the client's CPU is CPU the servers do not get."
    )
    print(
        f"load: {args.requests:,} timed requests, {args.concurrency} connections (HTTP/1.1 "
        f"keep-alive, one request in flight each), {args.warmup} warm-up requests first"
    )
    print(
        f"tokens: {args.tokens:,} registered {args.token_type}s (+{args.warmup} warm-up), "
        f"each with its own sub and "
        f"{'its own grant_id' if population.grant_ids else 'no grant_id'}; "
        f"cascade policy {args.cascade!r}"
    )

    measured: list[Child] = []
    commands: dict[str, list[str]] = {}
    registration_s: float | None = None
    if args.url:
        parts = urlsplit(args.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        key = args.admin_key
        tenant_id = f"bench-{secrets.token_hex(4)}"
        store = "as configured (--url)"
    else:
        host, key, tenant_id = "127.0.0.1", secrets.token_urlsafe(32), "bench"
        env["REVOCATION_ADMIN_KEY"] = key
        mongodb_uri = None
        store = args.store
        if args.store == "mongodb":
            db, mongodb_uri = start_secantus(children, tmp, env)
            measured.append(db)
            commands["secantusd"] = db.argv
            store = "mongodb (SecantusDB test server, NOT MongoDB)"
        service, port = start_service(
            children,
            tmp,
            env,
            workers=args.workers,
            log_level=args.log_level,
            mongodb_uri=mongodb_uri,
        )
        measured.insert(0, service)
        commands["service"] = service.argv
        print(f"service: {' '.join(service.argv)}")

    admin = Admin(host, port, key)
    results: list[Figures] = []
    events = taken = None
    phases: tuple[Phase, ...] = PLUGIN_PHASES if args.plugins else PLUGIN_PHASES[:1]
    if args.operations:
        phases = OPERATIONS_PHASES
    jose = Jose.of(args)
    extras: tuple[list[str] | None, list[str] | None] = (None, None)
    try:
        for phase in phases:
            if phase.service_args is not None:
                # A service of its own for this phase, on the same store directory.
                measured[0].stop()
                service, port = start_service(
                    children,
                    tmp,
                    env,
                    workers=args.workers,
                    log_level=args.log_level,
                    mongodb_uri=mongodb_uri,
                    extra_args=phase.service_args,
                )
                measured[0] = service
                admin = Admin(host, port, key)
                print(f"service for {phase.name!r}: {' '.join(service.argv)}")
            phase_tenant = tenant_id + phase.tenant_suffix
            secret = setup_tenant(admin, phase_tenant, args.cascade, jose)
            enable_plugins(admin, phase_tenant, phase)
            issuer = issuer_of(phase_tenant)
            if args.jwt_access_tokens:
                print(f"signing {population.total:,} JWT access tokens (not registered) ...")
                timed_tokens = jose.access_tokens(issuer, seed, 0, args.requests)
                warmup_tokens = jose.access_tokens(issuer, seed, args.tokens, args.warmup)
            else:
                print(
                    f"registering {population.total:,} tokens in batches of {BATCH:,} "
                    f"for {phase_tenant} ...",
                    flush=True,
                )
                registration_s = register(admin, phase_tenant, population)
                print(
                    f"  registration took {registration_s:.1f}s "
                    f"({population.total / registration_s:,.0f} tokens/s)",
                    flush=True,
                )
            if jose.client_key is not None:
                print(f"signing {population.total:,} {args.assertion_alg} client assertions ...")
                extras = (
                    jose.assertions(issuer, len(warmup_tokens)),
                    jose.assertions(issuer, len(timed_tokens)),
                )
            client_secret = None if jose.client_key is not None else secret
            head = request_head(phase_tenant, client_secret, host, port)
            name = f"revocation ({args.store if not args.url else 'url'})"
            results.append(
                measure(
                    f"{name}, {phase.name}" if args.plugins or args.operations else name,
                    host,
                    port,
                    head,
                    warmup_tokens,
                    timed_tokens,
                    args,
                    measured,
                    extras,
                )
            )
            events, taken = count_events(admin, phase_tenant, args.requests + args.warmup)
            print(
                f"  the tenant has {events:,} events taking down {taken:,} credentials "
                f"(expected {args.requests + args.warmup:,})"
            )
    finally:
        if args.url and not args.keep_tenant:
            for phase in phases:
                with contextlib.suppress(BenchError):
                    admin.expect(
                        "DELETE",
                        f"/admin/v1/tenants/{tenant_id}{phase.tenant_suffix}",
                        ok=(200, 204),
                    )
        # The service stops before the bare endpoint runs: it must not take CPU meanwhile.
        for child in measured:
            child.stop()

    if not args.no_bare:
        bare, bare_port = start_bare(children, tmp, env, workers=args.workers)
        commands["bare"] = bare.argv
        print(f"bare: {' '.join(bare.argv)}")
        head = request_head(tenant_id, client_secret, "127.0.0.1", bare_port)
        results.append(
            measure(
                "bare Starlette form",
                "127.0.0.1",
                bare_port,
                head,
                warmup_tokens,
                timed_tokens,
                args,
                [bare],
                extras,
            )
        )
        bare.stop()

    print()
    print(
        f"store: {store}; uvicorn: loop=uvloop, http=httptools, workers={args.workers}, "
        "access log off; service --log-level "
        f"{args.log_level if not args.url else '(as configured)'}"
    )
    print_table(results)
    bare_figures = results[-1] if not args.no_bare else None
    ratio = results[0].rps / bare_figures.rps if bare_figures else None
    if args.plugins or args.operations:
        base = results[0]
        for f in results[1 : len(phases)]:
            print(
                f"{f.target}: {f.rps / base.rps - 1:+.1%} throughput, "
                f"p50 {f.p50_ms - base.p50_ms:+.2f} ms, p99 {f.p99_ms - base.p99_ms:+.2f} ms "
                f"against {base.target.split(', ')[-1]}"
            )
    if ratio is not None:
        if args.url or args.store != "sqlite":
            verdict = "the aim (>= 0.50) is set for the embedded store only"
        else:
            verdict = f"aim: >= 0.50 on the embedded store: {'MET' if ratio >= 0.5 else 'NOT MET'}"
        print(f"\nratio revocation / bare = {ratio:.3f}  ({verdict})")
    for f in results:
        if f.server_cpu_pct and f.client_cpu_pct > 90:
            print(
                f"note: the load client used {f.client_cpu_pct:.0f}% of a core against "
                f"{f.target}: the figure may be bounded by the client, not the server"
            )
        if not f.server_cpu_pct:
            print(f"note: {f.target}: the server is not ours, its CPU counts as 'other'")
        elif f.other_cpu_pct is not None and f.other_cpu_pct > 10:
            print(
                f"WARNING: other processes used {f.other_cpu_pct:.0f}% of a core during the "
                f"{f.target} phase: the machine was not quiet, the figures are low"
            )

    ok = all(f.clean for f in results)
    expected = args.requests + args.warmup
    # A JWT access token is not a registered credential: its event takes down none.
    taken_ok = args.jwt_access_tokens or taken == expected
    if events is not None and (events != expected or not taken_ok):
        ok = False
        loud(
            f"the service recorded {events} events / {taken} credentials taken down, "
            f"expected {expected}: not every request did the work it should have"
        )
    for f in results:
        if not f.clean:
            loud(
                f"ERRORS against {f.target}: {f.errors} of {f.requests} requests were not 200"
                f" (statuses {f.statuses}; timed out: {f.timed_out})\n"
                f"samples: {f.error_samples}\nfailures: {f.failures[:5]}"
            )

    if args.json:
        report = {
            "machine": info,
            "shared_machine_note": "load client and servers run on the same machine",
            "settings": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k != "admin_key"
            },
            "store": store,
            "population": {
                "registered_timed": args.tokens,
                "registered_warmup": args.warmup,
                "token_type": args.token_type,
                "grant_ids": args.grant_ids,
                "cascade": args.cascade,
            },
            "registration_s": registration_s,
            "events": events,
            "credentials_taken_down": taken,
            "commands": commands,
            "results": [asdict(f) for f in results],
            "ratio": ratio,
            "ok": ok,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nJSON: {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
