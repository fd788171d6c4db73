"""Prometheus metrics (``GET /metrics``, for the operator's key only).

Per-request metrics are derived in one place, ``observe``, from what the canonical log
line of ``app.middleware.request_context`` already holds: its status and duration, the
fields endpoints add (``endpoint``, ``cause``, ``revoked``, ``outcome``, ``plugin_calls``,
``plugins``) and the tenant the tenancy middleware resolved (the line's ``tenant_id``).
What happens inside a store (transaction retries, batch sizes) is counted where it
happens, through the functions at the end of this module.

Labels are bounded: tenant ids, endpoint names, status codes, cascade policies, plugin
names, hooks and failure kinds; never a client id, a subject or a token. Latency is by
endpoint only: a histogram is some fifteen series per label set, and a service with
thousands of tenants would have tens of thousands of them for a figure that the
per-tenant request counts and plugin durations already break down.

Multi-process mode (``serve --workers N``, N > 1): ``serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at ``<data-dir>/prometheus`` and empties it before the
workers start (``use_multiprocess_dir``); each worker writes its values to files of its
own there and a scrape, whichever worker answers it, sums every file. There are only
counters and histograms, no gauges: a worker that dies leaves its files, and its counts
stay in the sums, as a counter must never go down. ``mark_process_dead`` only removes
the files of ``live*`` gauges, so there is nothing to do when a worker exits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import values as prometheus_values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from app.middleware.tenancy import TENANT_KEY
from app.responses import NO_STORE

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROC_DIR_NAME = "prometheus"
"""Below the data directory."""
MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV)
"""Read when prometheus-client is imported (it picks its value class then), so here too."""


class UnlockedValue:
    """A metric's value without prometheus-client's lock (single-process mode only).

    Every value is written by one thread: the event loop, or for the SQLite writer's
    batch sizes the writer's thread; a scrape only reads. A lock per increment (seven a
    request) bought nothing here and cost several percent of a revocation.
    """

    _multiprocess = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._value = 0.0
        self._exemplar: Any = None

    def inc(self, amount: float) -> None:
        self._value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self._value = value

    def set_exemplar(self, exemplar: Any) -> None:
        self._exemplar = exemplar

    def get(self) -> float:
        return self._value

    def get_exemplar(self) -> Any:
        return self._exemplar


if not MULTIPROC_DIR:
    # prometheus-client picks a metric's value class when the metric (or a labelled
    # child) is created: set it before any is.
    prometheus_values.ValueClass = UnlockedValue

# A ``_created`` series beside every counter and histogram doubles the series for little.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()
"""The single-process registry; in multi-process mode a scrape reads the files instead."""

M = TypeVar("M", bound=MetricWrapperBase)


class Children(Generic[M]):
    """A labelled metric's children, each created once per label tuple: ``labels()``
    converts, validates and locks on every call."""

    __slots__ = ("cache", "metric")

    def __init__(self, metric: M) -> None:
        self.metric = metric
        self.cache: dict[tuple[object, ...], M] = {}

    def __call__(self, *labels: object) -> M:
        child = self.cache.get(labels)
        if child is None:
            child = self.cache[labels] = self.metric.labels(*labels)
        return child


LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PLUGIN_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)
SQLITE_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
MONGODB_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

requests = Children(
    Counter(
        "revocation_http_requests",
        "HTTP requests by tenant, endpoint and status",
        ("tenant", "endpoint", "status"),
        registry=REGISTRY,
    )
)
durations = Children(
    Histogram(
        "revocation_http_request_duration_seconds",
        "HTTP request duration by endpoint",
        ("endpoint",),
        buckets=LATENCY_BUCKETS,
        registry=REGISTRY,
    )
)
revocations = Children(
    Counter(
        "revocation_revocations",
        "Revocation plans applied (outcome revoked) or found already applied, by cascade "
        "policy (the log line's cause)",
        ("tenant", "cause", "outcome"),
        registry=REGISTRY,
    )
)
credentials_revoked = Children(
    Counter(
        "revocation_credentials_revoked",
        "Credentials taken down (the log line's revoked), by cascade policy",
        ("tenant", "cause"),
        registry=REGISTRY,
    )
)
plugin_calls = Children(
    Counter(
        "revocation_plugin_calls",
        "Plugin hook calls",
        ("tenant", "plugin", "hook"),
        registry=REGISTRY,
    )
)
plugin_durations = Children(
    Histogram(
        "revocation_plugin_call_duration_seconds",
        "Plugin hook call duration, whatever its outcome",
        ("tenant", "plugin", "hook"),
        buckets=PLUGIN_BUCKETS,
        registry=REGISTRY,
    )
)
plugin_failures = Children(
    Counter(
        "revocation_plugin_failures",
        "Plugin calls that failed, by kind (timeout, exception, invalid_decision, ...)",
        ("tenant", "plugin", "kind"),
        registry=REGISTRY,
    )
)
plugin_decisions = Children(
    Counter(
        "revocation_plugin_decisions",
        "Plugin decisions that changed an outcome (veto, rejected, authenticated, "
        "narrowed, widened)",
        ("tenant", "plugin", "decision"),
        registry=REGISTRY,
    )
)
rate_limited = Children(
    Counter(
        "revocation_rate_limited",
        "Requests refused with 429 (failed client authentications over the limit)",
        ("tenant", "endpoint"),
        registry=REGISTRY,
    )
)
store_errors = Children(
    Counter(
        "revocation_store_errors",
        "Requests answered 503 because the store was unavailable",
        ("tenant", "endpoint"),
        registry=REGISTRY,
    )
)
transaction_retries = Children(
    Counter(
        "revocation_mongodb_transaction_retries",
        "MongoDB transactions run again (transient) or commits retried (commit_unknown, "
        "commit_transient)",
        ("reason",),
        registry=REGISTRY,
    )
)
SQLITE_BATCHES = Histogram(
    "revocation_sqlite_write_batch_size",
    "Jobs per SQLite write transaction (the group-commit writer's batches)",
    buckets=SQLITE_BATCH_BUCKETS,
    registry=REGISTRY,
)
MONGODB_BATCHES = Histogram(
    "revocation_mongodb_group_commit_batch_size",
    "Revocations per MongoDB group-commit transaction",
    buckets=MONGODB_BATCH_BUCKETS,
    registry=REGISTRY,
)

OPERATOR_ENDPOINTS = {
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/metrics": "metrics",
    "/openapi.json": "openapi",
}
FAILED = "failed:"


# --- per request, from the canonical log line ---------------------------------------------


def observe(scope: Scope, fields: Mapping[str, Any], status: int, seconds: float) -> None:
    """Count one request from its canonical log line's fields."""
    endpoint = fields.get("endpoint") or endpoint_of(scope)
    view = scope.get(TENANT_KEY)
    if view is not None:
        tenant = view.tenant_id
    elif status < 400:
        # The admin API's tenant comes from the path: only once the request succeeded is
        # it known to be a tenant (anyone's 404 could otherwise mint label values).
        tenant = fields.get("tenant_id", "")
    else:
        tenant = ""
    requests(tenant, endpoint, status).inc()
    durations(endpoint).observe(seconds)
    cause = fields.get("cause")
    if cause is not None:
        revocations(tenant, cause, fields.get("outcome", "")).inc()
        revoked = fields.get("revoked")
        if revoked:
            credentials_revoked(tenant, cause).inc(revoked)
    if "plugin_calls" in fields or "plugins" in fields:
        observe_plugins(tenant, fields)
    if status == 429:
        rate_limited(tenant, endpoint).inc()
    elif status == 503 and not plugin_failed(fields):
        # The other 503 is a plugin's failure under fail_closed, which ends the request
        # right after the failure entry it logged.
        store_errors(tenant, endpoint).inc()


def endpoint_of(scope: Scope) -> str:
    """Requests no endpoint named: the admin API, the operator's routes, the rest."""
    path: str = scope.get("revocation.route_path") or scope.get("path", "")
    if path.startswith("/admin/"):
        return "admin"
    return OPERATOR_ENDPOINTS.get(path, "other")


def observe_plugins(tenant: str, fields: Mapping[str, Any]) -> None:
    for name, hook, milliseconds in fields.get("plugin_calls", ()):
        plugin_calls(tenant, name, hook).inc()
        plugin_durations(tenant, name, hook).observe(milliseconds / 1000)
    for entry in fields.get("plugins", ()):
        # ``name@version:outcome``; the version is left out, as uploads make it grow.
        name, _, rest = entry.partition("@")
        outcome = rest.partition(":")[2]
        if outcome.startswith(FAILED):
            plugin_failures(tenant, name, outcome[len(FAILED) :]).inc()
        else:
            plugin_decisions(tenant, name, outcome).inc()


def plugin_failed(fields: Mapping[str, Any]) -> bool:
    entries: list[str] | None = fields.get("plugins")
    if not entries:
        return False
    return f":{FAILED}" in entries[-1]


# --- inside the stores ----------------------------------------------------------------------


def sqlite_write_batch(size: int) -> None:
    SQLITE_BATCHES.observe(size)


def mongodb_group_commit(size: int) -> None:
    MONGODB_BATCHES.observe(size)


def mongodb_transaction_retry(reason: str) -> None:
    """``transient``, ``commit_unknown`` or ``commit_transient``."""
    transaction_retries(reason).inc()


# --- exposition ---------------------------------------------------------------------------


def use_multiprocess_dir(path: Path) -> None:
    """Before the workers start: an empty directory for their files, named to them in
    the environment (prometheus-client reads it when a worker imports it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path.resolve())


def exposition() -> bytes:
    """The text format: this process's registry, or in multi-process mode every
    worker's files, those of workers that have exited included."""
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=MULTIPROC_DIR)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def metrics_endpoint(request: Request) -> Response:
    # Imported here: the stores count through this module, and the admin keys' module
    # imports them (through Services), so a module-level import would be a cycle.
    from app.admin.auth import authenticate, authorize

    principal = await authenticate(request.app.state.services, request)
    authorize(principal, None, tenant_key=False)
    return Response(exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4, headers=NO_STORE)
