"""What a sandboxed plugin call costs: 2,000 trivial ``pre_revoke`` calls through
``Sandbox.call``, one at a time, on a warm worker (p50, p99, max), plus the cold start
of a worker (the first call of a tenant). Figures go to ``docs/PLUGINS_SANDBOX.md``::

    python scripts/bench_sandbox.py [--calls 2000] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from dataclasses import dataclass

from app.plugins.sandbox import Sandbox, SandboxLimits

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


@dataclass(frozen=True)
class Code:
    name: str
    version: int
    source: str
    sha256: str


def quantile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def bench(calls: int) -> None:
    code = Code("bench", 1, SOURCE, hashlib.sha256(SOURCE.encode()).hexdigest())
    args = {"context": CONTEXT, "plan": PLAN}
    sandbox = Sandbox(SandboxLimits())
    try:
        layers = await sandbox.layers()
        print("layers:", ", ".join(f"{k}={'on' if v else 'OFF'}" for k, v in layers.items()))
        began = time.perf_counter()
        await sandbox.call("acme", code, "pre_revoke", args)
        cold_ms = 1000 * (time.perf_counter() - began)
        print(f"cold start (worker started, module loaded): {cold_ms:.1f} ms")
        for _ in range(100):
            await sandbox.call("acme", code, "pre_revoke", args)
        timings: list[float] = []
        for _ in range(calls):
            began = time.perf_counter()
            await sandbox.call("acme", code, "pre_revoke", args)
            timings.append(time.perf_counter() - began)
    finally:
        await sandbox.close()
    timings.sort()
    us = [1e6 * t for t in timings]
    print(
        f"{calls} warm calls: p50 {quantile(us, 0.50):.0f} us, p99 {quantile(us, 0.99):.0f} us, "
        f"max {us[-1]:.0f} us, mean {statistics.fmean(us):.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as in production")
    options = parser.parse_args()
    if options.uvloop:
        import uvloop

        uvloop.run(bench(options.calls))
    else:
        asyncio.run(bench(options.calls))


if __name__ == "__main__":
    main()
