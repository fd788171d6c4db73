"""Fuzz the service against its OpenAPI document, longer than the suite's bounded run.

For every operation of the document (the admin API included), ``--examples`` positive
and as many negative cases (schemathesis, Hypothesis seeded with ``--seed``), each
steered into a seeded world of tenants, clients and tokens (``tests/fuzz``), each
checked by every schemathesis check but ``positive_data_acceptance``: no 5xx, documented
status codes, content types and headers, response bodies that fit their schemas, invalid
input refused, authentication not ignored. Failures do not stop the run: each distinct
one (operation and check) is counted and printed once with a curl line to reproduce it.

Targets (one a run):

    python scripts/fuzz.py --store sqlite --examples 300 --minutes 5
    python scripts/fuzz.py --store mongodb              # SecantusDB, in this process
    python scripts/fuzz.py --mongodb-uri mongodb://127.0.0.1/?replicaSet=rs0
    python scripts/fuzz.py --base-url http://127.0.0.1:8000 --admin-key "$(cat data/admin-key)"
    python scripts/fuzz.py --properties --examples 100  # the engine properties, both stores

In process (``--store``, ``--mongodb-uri``: a fresh database of its own, dropped at the
end) the service runs on a temporary data directory; ``--base-url`` fuzzes a running
service, creating the ``fuzz-*`` tenants in it (its issuers are ``BASE/t/POLICY``).
``--properties`` runs ``tests/test_engine_properties.py`` on SQLite and SecantusDB with
``--examples`` examples per property and policy. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from app.logging import configure_logging  # noqa: E402
from app.openapi.document import build  # noqa: E402
from app.routes import routes  # noqa: E402
from app.store.base import Store  # noqa: E402
from app.store.mongodb.store import MongoStore  # noqa: E402
from tests.fuzz.config import schemathesis_config  # noqa: E402
from tests.fuzz.service import CurrentService, ServiceOnStore  # noqa: E402
from tests.fuzz.steering import steer  # noqa: E402
from tests.fuzz.world import OPERATOR_KEY, World, seed  # noqa: E402
from tests.store.backends import BACKENDS, StoreFactory  # noqa: E402
from tests.support.mongo import drop_database  # noqa: E402
from tests.support.secantus import shared_server  # noqa: E402

IN_PROCESS_BASE = "http://testserver"


class OutOfTime(Exception):
    """The operation's share of ``--minutes`` is spent."""


@dataclass
class Finding:
    count: int
    report: str


@dataclass
class Findings:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], Finding] = field(default_factory=dict)
    cases: int = 0

    def record(self, label: str, group: FailureGroup) -> None:
        for failure in group.exceptions:
            key = (label, getattr(failure, "title", type(failure).__name__))
            if key in self.failures:
                self.failures[key].count += 1
            else:
                self.failures[key] = Finding(1, str(group))


def fuzz(schema: Any, world: World, examples: int, seed_value: int, until: float) -> Findings:
    """Every operation in both modes, each given an equal share of the time left."""
    findings = Findings()
    runs = [
        (result.ok(), mode)
        for result in schema.get_all_operations()
        for mode in schemathesis.GenerationMode
    ]
    for done, (operation, mode) in enumerate(runs):
        share = (until - time.monotonic()) / (len(runs) - done)
        own_until = time.monotonic() + max(share, 0.0)
        run_operation(operation, mode, world, examples, seed_value, own_until, findings)
    return findings


def run_operation(
    operation: Any,
    mode: schemathesis.GenerationMode,
    world: World,
    examples: int,
    seed_value: int,
    until: float,
    findings: Findings,
) -> None:
    label = operation.label

    @hypothesis_seed(seed_value)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        # Failures are recorded, not raised: nothing to shrink.
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def one(case: schemathesis.Case, data: Any) -> None:
        base_url = steer(case, data.draw, world)
        if time.monotonic() > until:
            # Raised after the draws: Hypothesis replays a failing example and wants
            # the same draws from it.
            raise OutOfTime
        findings.cases += 1
        try:
            response = case.call_and_validate(base_url=base_url)
        except FailureGroup as group:
            findings.record(label, group)
        else:
            findings.statuses[(label, response.status_code)] += 1

    # Unsatisfiable: nothing of the operation can be made invalid (negative mode).
    with contextlib.suppress(OutOfTime, Unsatisfiable):
        one()
    print(f"{label} ({mode.value}): done", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def external_mongodb(uri: str, tmp: Path) -> AsyncIterator[Store]:
    """A MongoStore on a fresh database of ``uri``, dropped afterwards."""
    database = f"fuzz_{secrets.token_hex(6)}"
    store = MongoStore(uri, database)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_database(uri, database)


@contextlib.contextmanager
def in_process(store: str, mongodb_uri: str | None) -> Iterator[tuple[Any, World]]:
    factory: StoreFactory
    if mongodb_uri:
        factory = lambda tmp: external_mongodb(mongodb_uri, tmp)  # noqa: E731
    else:
        factory = BACKENDS[store]
        if store == "mongodb":
            shared_server()  # from this thread: see tests/fuzz/test_schemathesis.py
    # Only what went wrong: an unhandled error's traceback, on stderr.
    configure_logging(level="error")
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        service = ServiceOnStore(factory, Path(tmp))
        os.environ["REVOCATION_ADMIN_KEY"] = OPERATOR_KEY
        service.start()
        current = CurrentService()
        current.target = service
        schema = schemathesis.openapi.from_dict(
            build(routes()), config=schemathesis_config(OPERATOR_KEY)
        )
        schema.app = current
        try:
            with asgi.get_client(current) as client:
                world = seed(lambda m, p, **kw: client.request(m, p, **kw), IN_PROCESS_BASE)
            yield schema, world
        finally:
            service.close()


@contextlib.contextmanager
def remote(base_url: str, admin_key: str) -> Iterator[tuple[Any, World]]:
    base_url = base_url.rstrip("/")
    config = schemathesis_config(admin_key)
    schema = schemathesis.openapi.from_url(
        f"{base_url}/openapi.json", headers={"Authorization": f"Bearer {admin_key}"}, config=config
    )
    with requests.Session() as session:
        world = seed(
            lambda m, p, **kw: session.request(m, base_url + p, timeout=10, **kw),
            base_url,
            admin_key,
        )
    yield schema, world


def report(findings: Findings, seconds: float, by_operation: bool) -> None:
    print(f"\n{findings.cases} cases in {seconds:.0f} s")
    by_status: Counter[int] = Counter()
    operations: dict[str, Counter[int]] = {}
    for (label, status), count in findings.statuses.items():
        by_status[status] += count
        operations.setdefault(label, Counter())[status] += count
    print("answers that passed every check, by status:", dict(sorted(by_status.items())))
    if by_operation:
        for label, statuses in sorted(operations.items()):
            print(f"  {label}: {dict(sorted(statuses.items()))}")
    if not findings.failures:
        print("no failures")
        return
    print(f"{len(findings.failures)} distinct failures:")
    for (label, title), finding in sorted(findings.failures.items()):
        print(f"\n=== {label}: {title} ({finding.count}x)\n{finding.report}")


def properties(examples: int) -> int:
    env = {
        **os.environ,
        "FUZZ_PROPERTY_EXAMPLES": str(examples),
        "FUZZ_PROPERTY_STORES": ",".join(BACKENDS),
    }
    command = [sys.executable, "-m", "pytest", "tests/test_engine_properties.py", "-q"]
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--store", choices=list(BACKENDS), default="sqlite")
    target.add_argument("--mongodb-uri", help="fuzz on this MongoDB (a fresh database)")
    target.add_argument("--base-url", help="fuzz a running service")
    target.add_argument("--properties", action="store_true", help="the engine properties")
    parser.add_argument("--admin-key", default=os.environ.get("REVOCATION_ADMIN_KEY"))
    parser.add_argument("--examples", type=int, default=200, help="per operation and mode")
    parser.add_argument("--minutes", type=float, default=10.0, help="about this long in all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-operation", action="store_true", help="statuses per operation")
    args = parser.parse_args()
    if args.properties:
        return properties(args.examples)
    if args.base_url and not args.admin_key:
        parser.error("--base-url needs --admin-key (or REVOCATION_ADMIN_KEY)")
    started = time.monotonic()
    until = started + args.minutes * 60
    if args.base_url:
        target_cm = remote(args.base_url, args.admin_key)
    else:
        target_cm = in_process(args.store, args.mongodb_uri)
    with target_cm as (schema, world):
        findings = fuzz(schema, world, args.examples, args.seed, until)
    report(findings, time.monotonic() - started, args.by_operation)
    return 1 if findings.failures else 0


if __name__ == "__main__":
    sys.exit(main())
