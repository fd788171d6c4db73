"""``GET|POST {issuer}/revocation/events``: the tenant's events for its resource servers.

The admin feed's events and cursor (``app.admin.events``), for a confidential client of
the tenant with the scope ``revocation_events``, authenticated as at the token endpoints.
Three ways to read:

- a page: ``after`` (the cursor, ``next`` of the previous page) and ``limit``;
- long-poll: with ``wait`` (seconds, up to ``MAX_WAIT_S``), a request that finds no
  event after the cursor is held until one is committed (by any worker or instance) or
  the time is up, and then answered at once, with an empty page at worst;
- Server-Sent Events: with ``Accept: text/event-stream``, the events after the cursor
  (or after ``Last-Event-ID``, which a reconnecting ``EventSource`` sends) and every new
  one as it is committed (``app.propagation.sse``).

Waiting costs the store nothing: readers wait on the process's ``EventNotifier``.

The parameters come from the query string, and for ``POST`` from the form body as well
(a name may be given once in all). ``GET`` carries client authentication as Basic, a
client assertion or a ``client_id``; a ``client_secret`` never goes in a URL (RFC 6749
section 2.3.1), so ``client_secret_post`` clients use ``POST``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive

from app.admin.events import parse_after, parse_limit
from app.errors import FieldError, InvalidRequest
from app.middleware.request_context import log_fields
from app.models import Event
from app.oauth.abuse_limits import limit_failures
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.form import add_once, parse_pairs, read_form
from app.oauth.steps import authenticate_client, require_confidential_client, require_scope
from app.propagation import sse
from app.responses import NO_STORE
from app.types import TenantId

ENDPOINT = "events"
SCOPE = "revocation_events"
MAX_WAIT_S = 60
WAIT_RE = re.compile(r"^[0-9]{1,2}(?:\.[0-9]{1,3})?$")
STREAM_BATCH = 100
"""Events per read of a stream (``limit`` bounds pages, not streams)."""
FEED = "feed"
"""``Exchange.extra`` key of the request's ``FeedRequest``."""


@dataclass(frozen=True, slots=True)
class FeedRequest:
    after: int
    limit: int
    wait_s: float
    stream: bool


async def read_parameters(x: Exchange) -> None:
    query = parse_pairs(x.request.scope.get("query_string", b""), "query string", "latin-1")
    if any(name == "client_secret" for name, _ in query):
        raise InvalidRequest("client_secret must not be sent in the URL: use POST or Basic")
    form = await read_form(x.request, x.services.config.max_body_bytes) if _posted(x) else {}
    x.form = add_once(form, query)


def _posted(x: Exchange) -> bool:
    return x.request.method == "POST"


def parse_wait(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    if not WAIT_RE.match(value) or float(value) > MAX_WAIT_S:
        raise FieldError("wait", f"must be a number of seconds from 0 to {MAX_WAIT_S}")
    return float(value)


async def read_request(x: Exchange) -> None:
    stream = sse.wants_stream(x.request.headers.get("accept"))
    after = parse_after(x.form.get("after"))
    last_event_id = x.request.headers.get("last-event-id")
    if stream and last_event_id is not None:
        try:
            after = parse_after(last_event_id.strip())
        except FieldError:
            raise FieldError("Last-Event-ID", "must be an event id from this feed") from None
    feed = FeedRequest(
        after, parse_limit(x.form.get("limit")), parse_wait(x.form.get("wait")), stream
    )
    x.extra[FEED] = feed
    x.log(after=str(feed.after), wait_s=feed.wait_s, stream=feed.stream)


async def respond(x: Exchange) -> None:
    feed: FeedRequest = x.extra[FEED]
    tenant_id = x.tenant.tenant_id
    if feed.stream:
        first = await x.services.store.list_events(tenant_id, feed.after, STREAM_BATCH)
        body = sse.stream(
            x.services, tenant_id, feed.after, STREAM_BATCH, first, log_fields(x.request.scope)
        )
        x.response = StreamingResponse(body, media_type=sse.MEDIA_TYPE, headers=sse.HEADERS)
        return
    events = await next_page(x, tenant_id, feed)
    x.log(events=len(events))
    next_cursor = str(events[-1].id if events else feed.after)
    x.response = JSONResponse(
        {"events": [e.to_json() for e in events], "next": next_cursor}, headers=NO_STORE
    )


async def next_page(x: Exchange, tenant_id: TenantId, feed: FeedRequest) -> list[Event]:
    """The events after the cursor; with ``wait``, the first that are committed within
    it. A client that goes away ends the wait."""
    notifier, store = x.services.notifier, x.services.store
    deadline = time.monotonic() + feed.wait_s
    gone: asyncio.Task[None] | None = None
    try:
        while True:
            stamp = notifier.stamp(tenant_id)
            events = await store.list_events(tenant_id, feed.after, feed.limit)
            remaining = deadline - time.monotonic()
            if events or remaining <= 0 or notifier.stopped:
                return events
            if gone is None:
                gone = asyncio.create_task(_until_disconnected(x.request.receive))
            woken = asyncio.ensure_future(notifier.wait(tenant_id, stamp, remaining))
            await asyncio.wait({woken, gone}, return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                woken.cancel()
                x.log(disconnected=True)
                return []
    finally:
        if gone is not None:
            gone.cancel()


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


STEPS: tuple[Step, ...] = (
    read_parameters,
    limit_failures(authenticate_client),
    require_confidential_client("the events feed"),
    require_scope(SCOPE),
    read_request,
    respond,
)


async def events_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, ENDPOINT), STEPS)
