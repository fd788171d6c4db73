"""Time one ``token_type_hint=all`` over N credentials of one client, end to end.

Starts ``revocation-service serve`` (one worker) on a fresh data directory, on SQLite or
(``--store mongodb``) on a SecantusDB server process; creates a tenant that allows
``token_type_hint=all``, the client and an introspecting resource server through the
admin API; registers N credentials of the client (and a few of another client) straight
into the store, in batches of ``--batch``, with the store's own bulk registration and the
service's master key (not timed); then times one ``POST /token/revoke`` with
``token_type_hint=all`` over HTTP, from the request to its ``200``. Afterwards it checks
that a random sample of the credentials is inactive at introspection, that the other
client's are still active, and that the tenant's one ``revoked`` event counts N.

While it runs, a thread revokes other credentials of that other client one at a time
(``--probes``) and reports how long those ordinary revocations took meanwhile: what a
mass revocation costs everyone else (on SQLite every write waits for the one writer).

    .venv/bin/python scripts/bench_mass_revocation.py --tokens 1000000
    .venv/bin/python scripts/bench_mass_revocation.py --store mongodb --tokens 100000

Figures and what they mean: ``docs/PERFORMANCE.md``, "Mass revocation".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS.parent))
sys.path.insert(0, str(SCRIPTS))

from bench import Admin, BenchError, Child, start_secantus, start_service, token_of  # noqa: E402

from app.keys import KeyRing  # noqa: E402
from app.models import Credential, TokenType  # noqa: E402
from app.store.base import Store  # noqa: E402
from app.store.mongodb.store import MongoStore  # noqa: E402
from app.store.sqlite.store import SqliteStore  # noqa: E402

TENANT = "mass"
CLIENT = "mass-client"
OTHER = "other-client"
RS = "rs"
SECRET = "mass-secret-" + "x" * 24
LIFETIME_S = 30 * 86_400
REVOKE_TIMEOUT_S = 24 * 3600.0
OTHERS = 10
"""Credentials of another client, which must stay active."""


def basic(client_id: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()


def post_form(port: int, path: str, form: dict[str, str], client_id: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REVOKE_TIMEOUT_S)
    try:
        conn.request(
            "POST",
            path,
            body=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": basic(client_id),
                "Tenant-ID": TENANT,
            },
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def set_up(admin: Admin) -> None:
    issuer = f"https://auth.example.com/t/{TENANT}"
    admin.expect(
        "PUT",
        f"/admin/v1/tenants/{TENANT}",
        {"issuer": issuer, "revocation": {"allow_revoke_all": True}},
        ok=(200, 201),
    )
    for client_id, scope in ((CLIENT, ""), (OTHER, ""), (RS, "introspect")):
        body = {
            "type": "confidential",
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": SECRET,
            "scope": scope,
        }
        admin.expect("PUT", f"/admin/v1/tenants/{TENANT}/clients/{client_id}", body, ok=(200, 201))


def open_store(data_dir: Path, mongodb_uri: str | None) -> Store:
    if mongodb_uri is None:
        return SqliteStore(data_dir / "revocation.sqlite3")
    return MongoStore(mongodb_uri, "revocation")


async def load(
    store: Store, master_key: bytes, seed: bytes, tokens: int, batch: int, others: int
) -> tuple[float, int]:
    """Register ``tokens`` credentials of ``CLIENT`` and ``others`` of ``OTHER`` (numbered
    from ``tokens`` on): seconds."""
    await store.open()
    try:
        tenant = await store.get_tenant(TENANT)
        if tenant is None:
            raise BenchError("the tenant was not created")
        keys = KeyRing(master_key)
        now = int(time.time())

        def credential(i: int, client_id: str) -> Credential:
            token_hash = keys.token_hash(TENANT, tenant.key_salt, token_of(seed, i))
            type_ = (TokenType.ACCESS_TOKEN, TokenType.REFRESH_TOKEN)[i % 2]
            return Credential(
                TENANT, token_hash, type_, client_id, now + LIFETIME_S, sub=f"user{i}", iat=now - 60
            )

        started = time.perf_counter()
        await store.register_credentials(
            TENANT, [credential(tokens + i, OTHER) for i in range(others)]
        )
        for first in range(0, tokens, batch):
            last = min(tokens, first + batch)
            await store.register_credentials(
                TENANT, [credential(i, CLIENT) for i in range(first, last)]
            )
            print(f"\r  registered {last:,}", end="", flush=True)
        print()
        return time.perf_counter() - started, now
    finally:
        await store.close()


def active(port: int, token: str) -> bool:
    status, body = post_form(port, "/token/introspect", {"token": token}, RS)
    if status != 200:
        raise BenchError(f"introspection answered {status}: {body[:200]!r}")
    return bool(json.loads(body)["active"])


class Probe(threading.Thread):
    """Revokes ``tokens`` one at a time on one keep-alive connection until stopped:
    (start, seconds) of each revocation."""

    def __init__(self, port: int, tokens: list[str]) -> None:
        super().__init__(daemon=True)
        self.port, self.tokens = port, tokens
        self.timings: list[tuple[float, float]] = []
        self.failures: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REVOKE_TIMEOUT_S)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(OTHER),
            "Tenant-ID": TENANT,
        }
        try:
            for token in self.tokens:
                if self.stopping.is_set():
                    return
                started = time.perf_counter()
                conn.request("POST", "/token/revoke", urlencode({"token": token}), headers)
                response = conn.getresponse()
                response.read()
                self.timings.append((started, time.perf_counter() - started))
                if response.status != 200:
                    self.failures.append(response.status)
        finally:
            conn.close()


def events(admin: Admin) -> list[dict[str, Any]]:
    """The tenant's whole feed, page by page."""
    found: list[dict[str, Any]] = []
    after = "0"
    while True:
        page = admin.expect("GET", f"/admin/v1/tenants/{TENANT}/events?after={after}&limit=1000")
        found += page["events"]
        if not page["events"]:
            return found
        after = page["next"]


def during(probe: Probe, start: float, end: float) -> str:
    inside = sorted(took for at, took in probe.timings if at + took >= start and at <= end)
    if not inside:
        return "no ordinary revocation ran meanwhile"
    median = inside[len(inside) // 2]
    return (
        f"{len(inside)} ordinary revocations meanwhile: median {median * 1000:.1f} ms, "
        f"max {inside[-1] * 1000:.1f} ms"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", choices=("sqlite", "mongodb"), default="sqlite")
    p.add_argument("--tokens", type=int, default=1_000_000, help="credentials of the client")
    p.add_argument("--batch", type=int, default=10_000, help="credentials per registration")
    p.add_argument("--sample", type=int, default=200, help="credentials checked afterwards")
    p.add_argument(
        "--probes", type=int, default=20_000, help="other credentials revoked one by one meanwhile"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mass-"))
    children: list[Child] = []
    try:
        return run(args, tmp, children)
    except BenchError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path, children: list[Child]) -> int:
    master_key = secrets.token_bytes(32)
    admin_key = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    env |= {"REVOCATION_ADMIN_KEY": admin_key, "REVOCATION_MASTER_KEY": master_key.hex()}
    mongodb_uri = None
    if args.store == "mongodb":
        _, mongodb_uri = start_secantus(children, tmp, env)
    _, port = start_service(
        children, tmp, env, workers=1, log_level="warning", mongodb_uri=mongodb_uri
    )
    print(f"store: {args.store}{' (SecantusDB, not MongoDB)' if mongodb_uri else ''}")
    set_up(Admin("127.0.0.1", port, admin_key))

    seed = secrets.token_bytes(8)
    print(f"registering {args.tokens:,} credentials of one client, {args.batch:,} a batch ...")
    store = open_store(tmp / "data", mongodb_uri)
    others = OTHERS + args.probes
    loading_s, _ = asyncio.run(load(store, master_key, seed, args.tokens, args.batch, others))
    print(f"  took {loading_s:.1f}s ({args.tokens / loading_s:,.0f}/s), not timed")

    probe = Probe(port, [token_of(seed, args.tokens + OTHERS + i) for i in range(args.probes)])
    probe.start()
    time.sleep(0.5)  # the probe's revocations before the mass revocation, for comparison
    started = time.perf_counter()
    status, body = post_form(
        port, "/token/revoke", {"token": "anything", "token_type_hint": "all"}, CLIENT
    )
    elapsed = time.perf_counter() - started
    probe.stopping.set()
    probe.join()
    if status != 200:
        raise BenchError(
            f"token_type_hint=all answered {status} after {elapsed:.1f}s: {body[:300]!r}"
        )
    print(
        f"token_type_hint=all over {args.tokens:,} credentials: {elapsed:.2f}s (HTTP, to the 200)"
    )

    sample = random.sample(range(args.tokens), min(args.sample, args.tokens))
    still = [i for i in sample if active(port, token_of(seed, i))]
    others = [active(port, token_of(seed, args.tokens + i)) for i in range(OTHERS)]
    counts = [(e["cause"], e["count"]) for e in events(Admin("127.0.0.1", port, admin_key))]
    print(f"sample of {len(sample)}: {len(still)} still active", end="; ")
    print(f"other client: {sum(others)}/{OTHERS} active")
    print(f"before: {during(probe, 0.0, started)}")
    print(f"during: {during(probe, started, started + elapsed)}")
    mass = [count for count in counts if count[0] == "all"]
    print(f"events: {mass} (and {len(counts) - len(mass)} of the probe's revocations)")
    if probe.failures:
        print(f"NOTE: ordinary revocations that failed meanwhile: {Counter(probe.failures)}")
    if still or not all(others) or mass != [("all", args.tokens)]:
        raise BenchError("the revocation is not whole, or took more than its client's")
    print("verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
