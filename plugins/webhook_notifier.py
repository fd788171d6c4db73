"""Notify a tenant's URL of every revocation: a signed JSON event, POSTed in the background.

``post_revoke`` builds the event, signs it and puts it on a bounded in-process queue
(one per tenant and URL), and returns at once: the response never waits for the
receiver. A background asyncio task per queue (started on first use in the running
loop, ended when its queue is empty) POSTs the events in order, with up to
``max_attempts`` attempts per event and exponential back-off between them
(``backoff_s``, doubled each time, at most ``MAX_BACKOFF_S``). A full queue drops its
oldest event (logged ``webhook_event_dropped``): nothing ever blocks. Delivery is at
least once: a receiver deduplicates on ``id``.

The request: ``POST url`` with ``Content-Type: application/json``, the body::

    {"id": "<random, one per event>", "tenant_id": "acme",
     "issuer": "https://auth.example.com/t/acme", "endpoint": "revocation",
     "time": 1700000000, "client_id": "app", "cause": "grant", "count": 2,
     "applied": true, "event_ids": ["41", "42"], "sub": "alice", "grant_id": "g1",
     "token_type": "refresh_token"}

(``endpoint`` is ``revocation`` or ``admin.withdraw``; ``cause`` the cascade policy,
``all`` for ``token_type_hint=all``; ``event_ids`` the ids of the tenant's feed; never a
token or its hash), and the headers ``X-Revocation-Signature: sha256=<hex HMAC-SHA256 of
the raw body under the key>`` and ``X-Revocation-Timestamp: <the event's time>`` (the
body's ``time``, so covered by the signature). A 2xx answer delivers; a network error,
a timeout, 408, 425, 429 or 5xx is retried; any other status (redirects are not
followed) gives the event up (logged ``webhook_gave_up``).

Config::

    {"url": "https://hooks.example.com/revocations",
     "signing_key_env": "REVOCATION_WEBHOOK_KEY_ACME",
     "timeout_s": 5, "max_attempts": 5, "queue_size": 1000, "backoff_s": 1.0}

``url`` and ``signing_key_env`` are required. The key is read from the service's
environment variable ``signing_key_env``, which must start with
``REVOCATION_WEBHOOK_KEY_`` (so that no other secret of the service can be made an HMAC
key by a tenant admin) and must be set, with at least 16 bytes, when the config is set.
``url`` must be ``https`` and must not name ``localhost`` or an IP address that is not
globally routable (loopback, private, link-local, …); with the environment variable
``REVOCATION_WEBHOOK_ALLOW_INSECURE=1`` (development, tests) ``http`` and those hosts are
allowed. ``timeout_s`` (0 < t <= 60) bounds each attempt as a whole.

``drain(timeout_s)`` waits until every queue is empty (tests, graceful shutdown) and
``close()`` stops the delivery tasks, dropping what is still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import socket
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from app.plugins.config import known_keys
from app.plugins.context import HookContext, OutcomeView
from app.plugins.hookspecs import hookimpl

__version__ = "1.0"

ALLOW_INSECURE_ENV = "REVOCATION_WEBHOOK_ALLOW_INSECURE"
KEY_ENV_PREFIX = "REVOCATION_WEBHOOK_KEY_"
KEY_ENV_RE = re.compile(r"^REVOCATION_WEBHOOK_KEY_[A-Za-z0-9_]{1,100}$")
MIN_KEY_BYTES = 16
MAX_URL = 2048
MAX_BACKOFF_S = 60.0
SIGNATURE_HEADER = "X-Revocation-Signature"
TIMESTAMP_HEADER = "X-Revocation-Timestamp"
USER_AGENT = f"revocation-service-webhook/{__version__}"
RETRY_STATUSES = frozenset({408, 425, 429})

KEYS = frozenset({"url", "signing_key_env", "timeout_s", "max_attempts", "queue_size", "backoff_s"})
# key → (default, minimum, maximum, integer only); ``timeout_s`` must be above its minimum.
NUMBERS: dict[str, tuple[float, float, float, bool]] = {
    "timeout_s": (5.0, 0.0, 60.0, False),
    "max_attempts": (5, 1, 20, True),
    "queue_size": (1000, 1, 100_000, True),
    "backoff_s": (1.0, 0.0, MAX_BACKOFF_S, False),
}

log = structlog.get_logger("revocation.plugins.webhook_notifier")


# --- config ------------------------------------------------------------------------------


def _insecure_allowed() -> bool:
    return os.environ.get(ALLOW_INSECURE_ENV) == "1"


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, legacy IPv4 forms (``127.1``, ``0x7f000001``)
    included, as resolvers accept them too."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _internal(host: str) -> bool:
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    ip = _ip_literal(name)
    return ip is not None and (not ip.is_global or ip.is_multicast)


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise ValueError(f"url must be a URL of at most {MAX_URL} characters")
    if any(not "!" <= c <= "~" for c in value):
        raise ValueError("url: spaces, control and non-ASCII characters must be percent-encoded")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"url: not a valid URL ({exc})") from None
    insecure = _insecure_allowed()
    schemes = ("https", "http") if insecure else ("https",)
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"url must be https (http only with {ALLOW_INSECURE_ENV}=1)")
    if not host:
        raise ValueError("url has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("url: no credentials in the URL (they would be logged and stored)")
    if parts.fragment:
        raise ValueError("url: no fragment")
    if not insecure and _internal(host):
        raise ValueError(
            f"url: {host} is localhost or a non-public address "
            f"(allowed only with {ALLOW_INSECURE_ENV}=1)"
        )
    return value


def _signing_key_env(value: Any) -> str:
    if not isinstance(value, str) or not KEY_ENV_RE.match(value):
        raise ValueError(
            f"signing_key_env must name an environment variable {KEY_ENV_PREFIX}… "
            "(letters, digits, _)"
        )
    key = os.environ.get(value, "")
    if not key:
        raise ValueError(f"signing_key_env: the environment variable {value} is not set")
    if len(key.encode()) < MIN_KEY_BYTES:
        raise ValueError(f"signing_key_env: {value} holds a key shorter than {MIN_KEY_BYTES} bytes")
    return value


def _number(config: dict[str, Any], key: str) -> float | int:
    default, low, high, integer = NUMBERS[key]
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be {'an integer' if integer else 'a number'}")
    if integer and not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    too_low = value <= low if key == "timeout_s" else value < low
    if not math.isfinite(value) or too_low or value > high:
        bound = "above" if key == "timeout_s" else "at least"
        raise ValueError(f"{key} must be {bound} {low:g} and at most {high:g}")
    return int(value) if integer else float(value)


@hookimpl
def plugin_config(config: dict[str, Any]) -> dict[str, Any]:
    config = known_keys(config, KEYS)
    for required in ("url", "signing_key_env"):
        if required not in config:
            raise ValueError(f"{required} is required")
    return {
        "url": _url(config["url"]),
        "signing_key_env": _signing_key_env(config["signing_key_env"]),
        **{key: _number(config, key) for key in NUMBERS},
    }


# --- the queues --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed event for one URL, with how to deliver it."""

    url: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float
    max_attempts: int
    backoff_s: float


@dataclass(eq=False, slots=True)
class Channel:
    """The queue of one tenant's URL and its delivery task."""

    tenant_id: str
    url: str
    queue_size: int
    pending: deque[Delivery] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    """The running delivery task; None when the queue is idle."""

    @property
    def host(self) -> str:
        """For the log: the URL's host, never its path or query."""
        return urlsplit(self.url).hostname or ""


_channels: dict[tuple[str, str], Channel] = {}
_tasks: set[asyncio.Task[None]] = set()


def _running(channel: Channel, loop: asyncio.AbstractEventLoop) -> bool:
    task = channel.task
    return task is not None and not task.done() and task.get_loop() is loop


def _start(channel: Channel, loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(_deliver_all(channel), name=f"webhook_notifier:{channel.tenant_id}")
    channel.task = task
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _enqueue(tenant_id: str, delivery: Delivery, queue_size: int) -> None:
    key = (tenant_id, delivery.url)
    channel = _channels.get(key)
    if channel is None:
        channel = _channels[key] = Channel(tenant_id, delivery.url, queue_size)
    channel.queue_size = queue_size
    while len(channel.pending) >= queue_size:
        channel.pending.popleft()
        log.warning(
            "webhook_event_dropped",
            tenant_id=tenant_id,
            host=channel.host,
            reason="queue full",
            queue_size=queue_size,
        )
    channel.pending.append(delivery)
    loop = asyncio.get_running_loop()
    if not _running(channel, loop):
        _start(channel, loop)


async def _deliver_all(channel: Channel) -> None:
    """Deliver the channel's events in order until its queue is empty."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while channel.pending:
            delivery = channel.pending.popleft()
            try:
                await _deliver(client, channel, delivery)
            except Exception as exc:  # a bug must not stop the queue
                log.error(
                    "webhook_failed",
                    tenant_id=channel.tenant_id,
                    host=channel.host,
                    error=f"{type(exc).__name__}: {exc}",
                )
        # Idle from here on (no await since the queue was seen empty): the next event
        # starts a new task.
        channel.task = None
        if _channels.get((channel.tenant_id, channel.url)) is channel:
            del _channels[(channel.tenant_id, channel.url)]


async def _attempt(client: httpx.AsyncClient, delivery: Delivery) -> tuple[bool, str]:
    """(whether to retry, what happened) of one POST; (False, "") when delivered."""
    try:
        async with (
            asyncio.timeout(delivery.timeout_s),
            client.stream(
                "POST",
                delivery.url,
                content=delivery.body,
                headers=delivery.headers,
                timeout=delivery.timeout_s,
            ) as response,
        ):
            status = response.status_code  # the body is never read
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        return True, type(exc).__name__
    if 200 <= status < 300:
        return False, ""
    return status in RETRY_STATUSES or status >= 500, f"status {status}"


async def _deliver(client: httpx.AsyncClient, channel: Channel, delivery: Delivery) -> None:
    for attempt in range(1, delivery.max_attempts + 1):
        retry, failure = await _attempt(client, delivery)
        if not failure:
            log.debug("webhook_delivered", tenant_id=channel.tenant_id, host=channel.host)
            return
        if not retry or attempt == delivery.max_attempts:
            log.warning(
                "webhook_gave_up",
                tenant_id=channel.tenant_id,
                host=channel.host,
                attempts=attempt,
                failure=failure,
            )
            return
        log.info(
            "webhook_retry",
            tenant_id=channel.tenant_id,
            host=channel.host,
            attempt=attempt,
            failure=failure,
        )
        await asyncio.sleep(min(delivery.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))


async def drain(timeout_s: float) -> None:
    """Wait until every queue is empty and no event is being delivered; ``TimeoutError``
    after ``timeout_s`` seconds. Restarts, in this loop, the queues left by a former one."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        while True:
            busy: list[asyncio.Task[None]] = []
            for channel in list(_channels.values()):
                if channel.pending and not _running(channel, loop):
                    _start(channel, loop)
                if channel.task is not None and _running(channel, loop):
                    busy.append(channel.task)
            if not busy:
                return
            await asyncio.wait(busy)


async def close() -> None:
    """Stop the delivery tasks of this loop; the events still queued are dropped (logged)."""
    loop = asyncio.get_running_loop()
    tasks = [t for t in _tasks if t.get_loop() is loop and not t.done()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in _channels.values():
        if channel.pending:
            log.warning(
                "webhook_event_dropped",
                tenant_id=channel.tenant_id,
                host=channel.host,
                reason="closed",
                count=len(channel.pending),
            )
    _channels.clear()
    _tasks.clear()


# --- the hook ----------------------------------------------------------------------------


SHUTDOWN_DRAIN_S = 5.0


@hookimpl
async def plugin_shutdown() -> None:
    """Deliver what is queued for a few seconds, then drop the rest (logged)."""
    with contextlib.suppress(TimeoutError):
        await drain(SHUTDOWN_DRAIN_S)
    await close()


def _body(context: HookContext, outcome: OutcomeView) -> bytes:
    credential = context.credential
    event = {
        "id": uuid.uuid4().hex,
        "tenant_id": context.tenant_id,
        "issuer": context.issuer,
        "endpoint": context.endpoint,
        "time": context.now,
        "client_id": (
            context.client.client_id if context.client else context.params.get("client_id")
        ),
        "cause": outcome.cause,
        "count": outcome.count,
        "applied": outcome.applied,
        "event_ids": [str(i) for i in outcome.event_ids],
        "sub": credential.sub if credential else context.params.get("sub"),
        "grant_id": credential.grant_id if credential else None,
        "token_type": credential.type if credential else None,
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


@hookimpl
def post_revoke(context: HookContext, outcome: OutcomeView) -> None:
    config = context.config
    key_env: str = config["signing_key_env"]
    key = os.environ.get(key_env, "")
    if not key:
        raise RuntimeError(f"the environment variable {key_env} (signing key) is not set")
    body = _body(context, outcome)
    signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: f"sha256={signature}",
        TIMESTAMP_HEADER: str(context.now),
    }
    delivery = Delivery(
        config["url"],
        body,
        headers,
        float(config.get("timeout_s", NUMBERS["timeout_s"][0])),
        int(config.get("max_attempts", NUMBERS["max_attempts"][0])),
        float(config.get("backoff_s", NUMBERS["backoff_s"][0])),
    )
    _enqueue(context.tenant_id, delivery, int(config.get("queue_size", NUMBERS["queue_size"][0])))
