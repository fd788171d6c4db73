"""What a sandboxed plugin call costs: trivial ``pre_revoke`` calls through
``Sandbox.call`` on warm workers (p50, p99, max, and the service process's CPU time per
call), plus the cold start of a worker (the first call of a tenant). One at a time by
default; ``--concurrency N`` runs N tasks each calling back to back, as N concurrent
requests of one tenant would. Figures go to the "Cost" part of ``docs/PLUGINS.md``::

    python scripts/bench_sandbox.py [--calls 2000] [--concurrency 32] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from dataclasses import dataclass
from typing import Any

from app.plugins.sandbox import PluginFailure, Sandbox, SandboxLimits

SOURCE = "def pre_revoke(context, plan):\n    return None\n"
CONTEXT = {
    "tenant_id": "acme",
    "issuer": "https://as.example/t/acme",
    "endpoint": "revocation",
    "now": 1_700_000_000,
    "params": {"token_type_hint": "refresh_token"},
    "presented_auth": "client_secret_basic",
    "client": {"client_id": "app", "type": "confidential", "auth_method": "basic", "scope": ""},
    "credential": {"type": "refresh_token", "client_id": "app", "grant_id": "g1", "sub": "u"},
    "config": {},
}
PLAN = {
    "cause": "token",
    "selectors": [{"by": "token"}],
    "end_sessions": [],
    "delete_grants_of": [],
}
WARM_UP = 100


@dataclass(frozen=True)
class Code:
    name: str
    version: int
    source: str
    sha256: str


@dataclass
class Run:
    timings: list[float]
    failures: dict[str, int]


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def timed_calls(
    sandbox: Sandbox, code: Code, args: dict[str, Any], calls: int, run: Run
) -> None:
    for _ in range(calls):
        began = time.perf_counter()
        try:
            await sandbox.call("acme", code, "pre_revoke", args)
        except PluginFailure as exc:
            run.failures[exc.kind] = run.failures.get(exc.kind, 0) + 1
        run.timings.append(time.perf_counter() - began)


async def bench(calls: int, concurrency: int) -> None:
    code = Code("bench", 1, SOURCE, hashlib.sha256(SOURCE.encode()).hexdigest())
    args = {"context": CONTEXT, "plan": PLAN}
    sandbox = Sandbox(SandboxLimits())
    run = Run([], {})
    try:
        layers = await sandbox.layers()
        print("layers:", ", ".join(f"{k}={'on' if v else 'OFF'}" for k, v in layers.items()))
        began = time.perf_counter()
        await sandbox.call("acme", code, "pre_revoke", args)
        cold_ms = 1000 * (time.perf_counter() - began)
        print(f"cold start (worker started, module loaded): {cold_ms:.1f} ms")
        warm_up = Run([], {})
        await asyncio.gather(
            *(timed_calls(sandbox, code, args, WARM_UP, warm_up) for _ in range(concurrency))
        )
        shares = [calls // concurrency + (i < calls % concurrency) for i in range(concurrency)]
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(timed_calls(sandbox, code, args, n, run) for n in shares))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        workers = len(sandbox.worker_pids("acme"))
    finally:
        await sandbox.close()
    us = sorted(1e6 * t for t in run.timings)
    print(
        f"{calls} warm calls, {concurrency} at a time, {workers} worker(s): "
        f"{calls / wall:,.0f} calls/s, p50 {quantile(us, 0.50):.0f} us, "
        f"p99 {quantile(us, 0.99):.0f} us, max {us[-1]:.0f} us, "
        f"mean {statistics.fmean(us):.0f} us, "
        f"service CPU {1e6 * cpu / calls:.0f} us/call"
    )
    if run.failures:
        print(
            "failed calls (timed as well):",
            ", ".join(f"{k} {n}" for k, n in sorted(run.failures.items())),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1, help="tasks calling at once")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as in production")
    options = parser.parse_args()
    if options.calls < 1 or options.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    if options.uvloop:
        import uvloop

        uvloop.run(bench(options.calls, options.concurrency))
    else:
        asyncio.run(bench(options.calls, options.concurrency))


if __name__ == "__main__":
    main()
