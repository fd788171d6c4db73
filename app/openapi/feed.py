"""The events feed for resource servers (contract section 4.4), ``app.propagation.feed``."""

from __future__ import annotations

from app.oauth.form import FORM_TYPE
from app.openapi.components import CLIENT_AUTH, param, request_body, response
from app.openapi.public import ERRORS, PUBLIC, TENANT_HEADERS, _tenant_operation
from app.openapi.schemas import CLIENT_AUTH_PARAMETERS, EVENT_CURSOR, EVENT_LIMIT, ref
from app.propagation.feed import MAX_WAIT_S, SCOPE
from app.types import JSON

WAIT: JSON = {
    "type": "string",
    "pattern": r"^[0-9]{1,2}(\.[0-9]{1,3})?$",
    "description": f"Seconds, 0 to {MAX_WAIT_S}, up to 3 decimals.",
}
QUERY: list[JSON] = [
    param("after"),
    param("limit"),
    {
        "name": "wait",
        "in": "query",
        "schema": WAIT,
        "allowEmptyValue": True,
        "description": "Long-poll: when no event follows the cursor, hold the request until "
        "one is committed (by any worker or instance) or this many seconds have passed, "
        "then answer at once (an empty page at worst). 0 or none: answer at once.",
    },
    {
        "name": "client_id",
        "in": "query",
        "schema": {"type": "string"},
        "description": "With client_assertion, or alone for none (refused: the feed needs "
        "a confidential client).",
    },
    {"name": "client_assertion", "in": "query", "schema": {"type": "string"}},
    {"name": "client_assertion_type", "in": "query", "schema": {"type": "string"}},
    {
        "name": "Accept",
        "in": "header",
        "schema": {"type": "string"},
        "description": "text/event-stream: Server-Sent Events instead of a page.",
    },
    {
        "name": "Last-Event-ID",
        "in": "header",
        "schema": EVENT_CURSOR,
        "description": "With text/event-stream: resume after this event (overrides after).",
    },
]
STREAM: JSON = {
    "type": "string",
    "description": "One message per event: id: the event id, event: its type, data: the "
    "event as JSON (the Event schema). A comment line (: heartbeat) every 15 s while "
    "nothing happens. Ends when the client disconnects, the server shuts down or the store "
    "fails: reconnect with Last-Event-ID.",
}
ANSWERS: JSON = {
    "200": {
        "description": "The events after the cursor, in order, and next (the cursor to pass "
        "back); with Accept: text/event-stream, a stream of them.",
        "content": {
            "application/json": {"schema": ref("EventPage")},
            "text/event-stream": {"schema": STREAM},
        },
    },
    **ERRORS,
    "403": response("InsufficientScope"),
}
DESCRIPTION = (
    f"The tenant's events (the admin feed's objects and cursor) for a confidential client "
    f"with the scope {SCOPE}. GET takes Basic, a client assertion or client_id from the "
    "query string (never a client_secret: a URL is logged by proxies); POST also takes a "
    "form body (client_secret_post). A parameter may be given once in all."
)
FEED_REQUEST: JSON = {
    "type": "object",
    "properties": {
        "after": EVENT_CURSOR,
        "limit": {"type": "string", "description": f"1 to {EVENT_LIMIT['maximum']}."},
        "wait": WAIT,
        **CLIENT_AUTH_PARAMETERS,
    },
    "additionalProperties": {"type": "string"},
}


def _feed(summary: str, body: JSON | None = None) -> JSON:
    operation = _tenant_operation(
        summary, PUBLIC, CLIENT_AUTH, ANSWERS, description=DESCRIPTION, body=body
    )
    operation["parameters"] = [*TENANT_HEADERS, *QUERY]
    return operation


OPERATIONS: dict[tuple[str, str], JSON] = {
    ("GET", "/revocation/events"): _feed("The tenant's events: a page, long-poll or SSE"),
    ("POST", "/revocation/events"): _feed(
        "The tenant's events, with a form body (client_secret_post)",
        request_body(FEED_REQUEST, FORM_TYPE),
    ),
}
