"""Server-Sent Events of a tenant's events feed (WHATWG HTML, "Server-sent events").

Each event is one message: ``id:`` the event id (so a reconnecting ``EventSource``
sends it back as ``Last-Event-ID``), ``event:`` its type, ``data:`` the event as the
feed's JSON. A comment line every ``HEARTBEAT_S`` while nothing happens keeps proxies
and load balancers from closing an idle connection, and shows a dead one to the server.
The stream ends when the client goes, when the process shuts down, or when the store
fails (the client reconnects, resuming where it was).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog

from app.errors import ServiceError
from app.models import Event
from app.services import Services
from app.types import TenantId

log = structlog.get_logger("revocation.propagation")

MEDIA_TYPE = "text/event-stream"
HEARTBEAT_S = 15.0
RETRY_MS = 2000
"""How long a disconnected ``EventSource`` waits before it reconnects."""
HEADERS = {
    "Cache-Control": "no-store",
    # nginx buffers proxied responses unless told not to: events would arrive in lumps.
    "X-Accel-Buffering": "no",
}

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def wants_stream(accept: str | None) -> bool:
    """Whether the ``Accept`` header lists ``text/event-stream`` (with a non-zero q)."""
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != MEDIA_TYPE:
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q" and value.strip() in ("0", "0.0", "0.00", "0.000"):
                break
        else:
            return True
    return False


def message(event: Event) -> bytes:
    """One event as a message. The JSON is on one line: it has no raw line breaks."""
    body = event.to_json()
    return f"id: {event.id}\nevent: {event.type}\ndata: {_encode(body)}\n\n".encode()


async def stream(
    services: Services,
    tenant_id: TenantId,
    after: int,
    batch: int,
    first: list[Event],
    log_fields: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """The events after ``after``, then each new one as it is committed. ``first``: the
    page already read (a store outage then was a ``503``; one later ends the stream)."""
    notifier, store = services.notifier, services.store
    yield f"retry: {RETRY_MS}\n\n".encode()
    events, sent = first, 0
    beat_at = clock() + HEARTBEAT_S
    try:
        while True:
            for event in events:
                yield message(event)
                after = event.id
            sent += len(events)
            if notifier.stopped:
                return
            if events:
                beat_at = clock() + HEARTBEAT_S
                if len(events) == batch:  # maybe more already
                    events = await store.list_events(tenant_id, after, batch)
                    continue
            stamp = notifier.stamp(tenant_id)
            events = await store.list_events(tenant_id, after, batch)
            if events:
                continue
            remaining = beat_at - clock()
            if remaining <= 0:
                yield b": heartbeat\n\n"
                beat_at = clock() + HEARTBEAT_S
            else:
                await notifier.wait(tenant_id, stamp, remaining)
    except ServiceError as exc:
        log.warning("event_stream_ended", tenant_id=tenant_id, error=exc.error, after=after)
    finally:
        log_fields["events"] = sent
        log_fields["last_event_id"] = str(after)
