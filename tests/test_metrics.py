"""``GET /metrics``: the operator's key only, counts fed from the canonical log line,
bounded labels, and one sum over the workers of ``serve --workers 2``.

Counters live for the whole test process, so each test compares a scrape taken before
with one taken after.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import PyMongoError

from app import metrics
from app.config import ServiceConfig
from app.errors import StoreUnavailable
from app.middleware.tenancy import TENANT_KEY
from app.services import Services
from app.store.mongodb.transactions import run_in_transaction
from tests.support.server import running_server
from tests.support.world import OPERATOR, SECRET, Tenant, World, basic, make_world

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PLUGINS = REPO / "plugins"
FAILING_PLUGIN = '''"""Fails in pre_revoke, always."""

from app.plugins.hookspecs import hookimpl

__version__ = "2"


@hookimpl
def pre_revoke(context, plan):
    raise RuntimeError("told to fail")
'''
REQUESTS = "revocation_http_requests_total"


Values = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Values:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(values: Values, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and wanted <= ls)


class Scrapes:
    """``/metrics`` before and after: ``delta`` is what the requests between added."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.before: Values = {}
        self.after: Values = {}
        self.text = ""

    async def scrape(self) -> Values:
        r = await self.http.get("/metrics", headers=OPERATOR)
        assert r.status_code == 200, r.text
        self.text = r.text
        return parse(r.text)

    async def start(self) -> None:
        self.before = await self.scrape()

    async def stop(self) -> None:
        self.after = await self.scrape()

    def delta(self, name: str, **labels: str) -> float:
        return total(self.after, name, **labels) - total(self.before, name, **labels)


@pytest.fixture
async def scrapes(http: httpx.AsyncClient) -> Scrapes:
    return Scrapes(http)


async def test_only_the_operator_key_reads_metrics(http: httpx.AsyncClient) -> None:
    await make_world(http)
    r = await http.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
    created = await http.post("/admin/v1/tenants/acme/admin-keys", headers=OPERATOR)
    tenant_key = {"Authorization": f"Bearer {created.json()['key']}"}
    r = await http.get("/metrics", headers=tenant_key)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    r = await http.get("/metrics", headers=OPERATOR)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert "# TYPE revocation_http_requests_total counter" in r.text


async def test_requests_by_tenant_endpoint_and_status_without_client_ids(
    http: httpx.AsyncClient, scrapes: Scrapes
) -> None:
    world = await make_world(http)
    await world.tenant.client("client-7f3a9e", secret=SECRET)
    await world.tenant.register(
        {"token": "tok-5b1c77d0", "type": "access_token", "client_id": "client-7f3a9e"},
        {"token": "tok-8e2f40aa", "type": "access_token", "client_id": "app", "sub": "sub-c4d9"},
    )
    await scrapes.start()
    mine = basic("client-7f3a9e", SECRET)
    assert (await world.tenant.revoke("tok-5b1c77d0", auth=mine)).status_code == 200
    wrong = basic("client-7f3a9e", "not-the-secret-0123456789")
    assert (await world.tenant.revoke("tok-8e2f40aa", auth=wrong)).status_code == 401
    assert (await world.tenant.revoke(None, auth=mine)).status_code == 400
    assert (await world.tenant.introspect("tok-8e2f40aa", world.rs))["active"] is True
    await scrapes.stop()

    for endpoint, status, count in [
        ("revocation", "200", 1),
        ("revocation", "401", 1),
        ("revocation", "400", 1),
        ("introspection", "200", 1),
    ]:
        got = scrapes.delta(REQUESTS, tenant="acme", endpoint=endpoint, status=status)
        assert got == count, (endpoint, status)
    assert scrapes.delta(REQUESTS, tenant="acme") == 4
    duration = "revocation_http_request_duration_seconds_count"
    assert scrapes.delta(duration, endpoint="revocation") == 3
    assert scrapes.delta(duration, endpoint="introspection") == 1
    for secret in ("client-7f3a9e", "tok-5b1c77d0", "tok-8e2f40aa", "sub-c4d9", SECRET):
        assert secret not in scrapes.text


async def test_admin_requests_carry_a_tenant_only_once_it_is_known(
    http: httpx.AsyncClient, scrapes: Scrapes
) -> None:
    await make_world(http)
    await scrapes.start()
    assert (await http.get("/admin/v1/tenants/acme", headers=OPERATOR)).status_code == 200
    r = await http.get("/admin/v1/tenants/made-up-4711", headers=OPERATOR)
    assert r.status_code == 404
    assert (await http.post("/token/revoke", headers={"Tenant-ID": "nope"})).status_code == 400
    await scrapes.stop()
    assert scrapes.delta(REQUESTS, tenant="acme", endpoint="admin", status="200") == 1
    assert scrapes.delta(REQUESTS, tenant="", endpoint="admin", status="404") == 1
    assert scrapes.delta(REQUESTS, tenant="", endpoint="other", status="400") == 1
    assert "made-up-4711" not in scrapes.text


async def test_revocations_by_policy_and_credentials_taken_down(
    http: httpx.AsyncClient, services: Services, scrapes: Scrapes
) -> None:
    world = await make_world(http)  # cascade: grant
    grant = {"client_id": "app", "grant_id": "g1", "sub": "alice"}
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", **grant},
        {"token": "at-1", "type": "access_token", **grant},
        {"token": "at-2", "type": "access_token", **grant},
    )
    await scrapes.start()
    assert (await world.tenant.revoke("rt-1", auth=world.app)).status_code == 200
    assert (await world.tenant.revoke("rt-1", auth=world.app)).status_code == 200
    assert (await world.tenant.revoke("unknown", auth=world.app)).status_code == 200
    await scrapes.stop()

    revocations = "revocation_revocations_total"
    assert scrapes.delta(revocations, tenant="acme", cause="grant", outcome="revoked") == 1
    # Revoked already, and unknown: nothing to revoke, no plan.
    assert scrapes.delta(revocations, tenant="acme") == 1
    assert scrapes.delta("revocation_credentials_revoked_total", tenant="acme", cause="grant") == 3
    # The store's side: each revocation was committed in a batch.
    batches = (
        "revocation_sqlite_write_batch_size_count"
        if services.store.name == "sqlite"
        else "revocation_mongodb_group_commit_batch_size_count"
    )
    assert scrapes.delta(batches) >= 1


async def test_a_store_outage_is_counted(
    world: World, services: Services, scrapes: Scrapes, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> None:
        raise StoreUnavailable("connection refused")

    await scrapes.start()
    monkeypatch.setattr(services.store, "find_credential", down)
    assert (await world.tenant.revoke("a", auth=world.app)).status_code == 503
    monkeypatch.undo()
    await scrapes.stop()
    assert scrapes.delta("revocation_store_errors_total", tenant="acme", endpoint="revocation") == 1
    assert scrapes.delta(REQUESTS, tenant="acme", endpoint="revocation", status="503") == 1


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http)


# --- plugins ------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    """A plugins directory with the shipped ``revoke_veto`` and a plugin that fails."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "revoke_veto.py").write_text((SHIPPED_PLUGINS / "revoke_veto.py").read_text())
    (plugins / "always_fails.py").write_text(FAILING_PLUGIN)
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, plugins_dir=plugins)


async def enable(tenant: Tenant, *names: str, pre: str) -> None:
    configs: dict[str, Any] = {"revoke_veto": {"clients": ["app"]}, "always_fails": {}}
    enabled = [{"name": n, "config": configs[n]} for n in names]
    await tenant.patch({"plugins": {"enabled": enabled, "failure_mode": {"pre": pre}}})


async def test_plugin_calls_decisions_and_failures(world: World, scrapes: Scrapes) -> None:
    await world.tenant.register({"token": "at-1", "type": "access_token", "client_id": "app"})
    await enable(world.tenant, "always_fails", "revoke_veto", pre="fail_open")
    await scrapes.start()
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    await scrapes.stop()
    assert await world.active("at-1")  # vetoed

    calls = "revocation_plugin_calls_total"
    durations = "revocation_plugin_call_duration_seconds_count"
    for plugin in ("revoke_veto", "always_fails"):
        labels = {"tenant": "acme", "plugin": plugin, "hook": "pre_revoke"}
        assert scrapes.delta(calls, **labels) == 1, plugin
        assert scrapes.delta(durations, **labels) == 1, plugin
    failures = "revocation_plugin_failures_total"
    assert scrapes.delta(failures, tenant="acme", plugin="always_fails", kind="exception") == 1
    assert scrapes.delta(failures, plugin="revoke_veto") == 0
    decisions = "revocation_plugin_decisions_total"
    assert scrapes.delta(decisions, tenant="acme", plugin="revoke_veto", decision="veto") == 1
    assert scrapes.delta("revocation_revocations_total", tenant="acme") == 0
    assert "@" not in "".join(dict(ls).get("plugin", "") for _, ls in scrapes.after)


async def test_a_plugin_failing_closed_is_not_a_store_error(world: World, scrapes: Scrapes) -> None:
    await world.tenant.register({"token": "at-1", "type": "access_token", "client_id": "app"})
    await enable(world.tenant, "always_fails", pre="fail_closed")
    await scrapes.start()
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 503
    await scrapes.stop()
    failures = "revocation_plugin_failures_total"
    assert scrapes.delta(failures, tenant="acme", plugin="always_fails", kind="exception") == 1
    assert scrapes.delta("revocation_store_errors_total") == 0
    assert scrapes.delta(REQUESTS, tenant="acme", endpoint="revocation", status="503") == 1


def test_the_grafana_dashboard_names_only_metrics_that_exist() -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    named = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expr in exprs
        for name in re.findall(r"\brevocation_\w+", expr)
    }
    exposed = set(re.findall(r"^# TYPE (\S+) ", metrics.exposition().decode(), re.MULTILINE))
    assert named <= exposed, named - exposed
    assert len(named) == len(exposed), exposed - named  # and shows every one


# --- what HTTP alone cannot provoke here ----------------------------------------------------


def test_429_is_counted_as_a_rate_limit_refusal() -> None:
    before = parse(metrics.exposition().decode())
    scope = {"path": "/token/revoke", TENANT_KEY: SimpleNamespace(tenant_id="t-429")}
    metrics.observe(scope, {"endpoint": "revocation"}, 429, 0.001)
    after = parse(metrics.exposition().decode())
    name = "revocation_rate_limited_total"
    labels = {"tenant": "t-429", "endpoint": "revocation"}
    assert total(after, name, **labels) - total(before, name, **labels) == 1


class _Session:
    """Just enough of ``AsyncClientSession`` for ``run_in_transaction``."""

    def __init__(self, commit_errors: list[PyMongoError]) -> None:
        self.in_transaction = False
        self.commit_errors = commit_errors

    async def __aenter__(self) -> _Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def start_transaction(self, **options: object) -> None:
        self.in_transaction = True

    async def abort_transaction(self) -> None:
        self.in_transaction = False

    async def commit_transaction(self) -> None:
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.in_transaction = False


class _Client:
    def __init__(self, session: _Session) -> None:
        self.session = session

    def start_session(self) -> _Session:
        return self.session


async def test_mongodb_transaction_retries_are_counted_by_reason() -> None:
    name = "revocation_mongodb_transaction_retries_total"
    before = parse(metrics.exposition().decode())
    session = _Session(
        [
            PyMongoError("unknown", error_labels=["UnknownTransactionCommitResult"]),
            PyMongoError("conflict", error_labels=["TransientTransactionError"]),
        ]
    )
    failures = [PyMongoError("write conflict", error_labels=["TransientTransactionError"])]

    async def callback(_: object) -> str:
        if failures:
            raise failures.pop()
        return "done"

    client: Any = _Client(session)
    assert await run_in_transaction(client, callback, retry_for_s=60) == "done"
    after = parse(metrics.exposition().decode())
    for reason in ("transient", "commit_unknown", "commit_transient"):
        assert total(after, name, reason=reason) - total(before, name, reason=reason) == 1


# --- serve --workers 2 --------------------------------------------------------------------

ADMIN_KEY = "metrics-test-operator-key-0123456789"
ROUND = 20
MAX_ROUNDS = 50


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCATION_")}
    for name in ("MONGODB_URI", metrics.MULTIPROC_ENV):
        env.pop(name, None)
    return {**env, "REVOCATION_ADMIN_KEY": ADMIN_KEY}


@pytest.fixture
async def fresh_connections() -> AsyncIterator[httpx.AsyncClient]:
    """A client that opens a connection per request, so the kernel hands the requests
    to either worker."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        yield client


async def test_two_workers_are_summed_whichever_answers(
    tmp_path: Path, fresh_connections: httpx.AsyncClient
) -> None:
    data = tmp_path / "data"
    files = data / metrics.MULTIPROC_DIR_NAME
    files.mkdir(parents=True)
    (files / "counter_1.db").write_bytes(b"left by an earlier run")
    operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
    args = ["--data-dir", str(data), "--no-tenants", "--workers", "2"]
    with running_server(args, cwd=tmp_path, env=_env()) as server:
        http = fresh_connections
        assert not (files / "counter_1.db").exists()
        url = server.url
        r = await http.put(
            f"{url}/admin/v1/tenants/w2",
            json={"issuer": "https://w2.example"},
            headers=operator,
        )
        assert r.status_code == 201, r.text
        r = await http.put(
            f"{url}/admin/v1/tenants/w2/clients/app",
            json={"type": "confidential", "client_secret": SECRET},
            headers=operator,
        )
        assert r.status_code == 201, r.text
        revoke = {"Tenant-ID": "w2", **basic("app", SECRET)}

        async def revocations(n: int) -> None:
            answers = await asyncio.gather(
                *(
                    http.post(f"{url}/token/revoke", data={"token": "x"}, headers=revoke)
                    for _ in range(n)
                )
            )
            assert {a.status_code for a in answers} == {200}

        async def counted() -> list[float]:
            """The count of those revocations in three scrapes, each on its own
            connection (and so on either worker)."""
            out = []
            for _ in range(3):
                r = await http.get(f"{url}/metrics", headers=operator)
                assert r.status_code == 200, r.text
                out.append(total(parse(r.text), REQUESTS, tenant="w2", endpoint="revocation"))
            return out

        def serving_pids() -> set[int]:
            """Workers that have counted a request: each has a counter file of its own."""
            return {int(p.stem.rsplit("_", 1)[1]) for p in files.glob("counter_*.db")}

        sent = 0
        for _ in range(MAX_ROUNDS):
            await revocations(ROUND)
            sent += ROUND
            if len(serving_pids()) == 2:
                break
        assert len(serving_pids()) == 2, "one worker served every request"
        assert await counted() == [sent] * 3

        # A worker that dies leaves its counts in the sums.
        pidfd = os.pidfd_open(min(serving_pids()))
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            exited, _, _ = select.select([pidfd], [], [], 10)  # readable once it has exited
            assert exited
        finally:
            os.close(pidfd)
        await revocations(ROUND)
        assert await counted() == [sent + ROUND] * 3


async def test_a_service_without_metrics_counts_no_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve --no-metrics`` (the baseline of ``bench.py --operations``): requests still
    get their log line, and nothing is counted."""
    from starlette.responses import PlainTextResponse

    from app.application import middleware
    from app.middleware.request_context import RequestContextMiddleware

    observed: list[int] = []
    monkeypatch.setattr(metrics, "observe", lambda scope, fields, status, s: observed.append(1))
    endpoint = PlainTextResponse("ok")
    for count in (False, True):
        app = RequestContextMiddleware(endpoint, count=count)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/anything")).status_code == 200
    assert observed == [1]
    off = ServiceConfig(metrics=False)
    assert [m.kwargs for m in middleware(off) if m.cls is RequestContextMiddleware] == [
        {"count": False}
    ]
