"""``POST {issuer}/revocation/set-poll/{receiver_id}``: Poll-Based Security Event Token
(SET) Delivery Using HTTP (RFC 8936), the transmitter's side, for receivers registered
with ``delivery: poll``.

The caller authenticates as the receiver's ``client_id`` (a confidential client), as at
the other endpoints: a Basic header, or, the body being JSON, ``client_id`` with
``client_secret`` or a ``client_assertion`` as members of the body; it needs the scope
``revocation_events``. The body (section 2.4): ``ack`` (jtis), ``setErrs`` (jti → ``err``,
``description``), ``maxEvents``, ``returnImmediately``. The answer (section 2.5):
``{"sets": {jti: SET}, "moreAvailable": bool}``.

Acknowledgements are cumulative and in order: a SET's ``jti`` names its event, and
acknowledging (or reporting an error for) it acknowledges every earlier SET of the
receiver too. The cursor moves to the latest event acknowledged; the SETs after it are
answered again until acknowledged (at least once). ``returnImmediately: false`` (the
default) holds the request until a SET is available, at most ``LONG_POLL_S``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import Forbidden, InvalidRequest, NotFound
from app.models import DeliveryAttempt, Event, Receiver, ReceiverState
from app.oauth.abuse_limits import limit_failures
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.steps import authenticate_client, require_confidential_client, require_scope
from app.propagation.push import KEEP_LOG, PAGE
from app.propagation.rfc8417 import event_id_of, event_uri, set_jti
from app.propagation.signing_keys import sign_event
from app.request_body import read_body
from app.responses import NO_STORE

SCOPE = "revocation_events"
LONG_POLL_S = 30.0
"""The longest a poll without ``returnImmediately`` is held open."""
MAX_EVENTS = PAGE
"""The most SETs in one answer, whatever ``maxEvents`` asks."""
MAX_ACKS = 1_000
"""jtis in ``ack`` and ``setErrs`` together."""
SCAN_PAGES = 10
"""Pages of events one poll reads looking for the receiver's types."""
CREDENTIAL_MEMBERS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")
MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class PollRequest:
    ack: tuple[str, ...] = ()
    set_errs: tuple[tuple[str, str], ...] = ()
    """(jti, "err: description")."""
    max_events: int = MAX_EVENTS
    return_immediately: bool = False


def parse_poll(document: Any) -> PollRequest:
    """The poll request of a JSON body; ``InvalidRequest`` naming what is wrong."""
    if not isinstance(document, dict):
        raise InvalidRequest("the body must be a JSON object")
    ack = document.get("ack", [])
    if not isinstance(ack, list) or not all(isinstance(j, str) for j in ack):
        raise InvalidRequest("ack must be an array of jti strings")
    errs = document.get("setErrs", {})
    if not isinstance(errs, dict):
        raise InvalidRequest("setErrs must be an object of jti to error")
    set_errs: list[tuple[str, str]] = []
    for jti, error in errs.items():
        if not isinstance(error, dict) or not isinstance(error.get("err"), str):
            raise InvalidRequest(f"setErrs.{jti} must be an object with err")
        description = error.get("description")
        detail = error["err"] + (f": {description}" if isinstance(description, str) else "")
        set_errs.append((jti, _printable(detail)[:MAX_DETAIL]))
    if len(ack) + len(set_errs) > MAX_ACKS:
        raise InvalidRequest(f"at most {MAX_ACKS} jtis in ack and setErrs together")
    max_events = document.get("maxEvents", MAX_EVENTS)
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
        raise InvalidRequest("maxEvents must be a non-negative integer")
    immediately = document.get("returnImmediately", False)
    if not isinstance(immediately, bool):
        raise InvalidRequest("returnImmediately must be true or false")
    return PollRequest(tuple(ack), tuple(set_errs), min(max_events, MAX_EVENTS), immediately)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


# --- the steps ------------------------------------------------------------------------


async def parse_body(x: Exchange) -> None:
    body = await read_body(x.request, x.services.config.max_body_bytes)
    try:
        document = json.loads(body) if body else {}
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not JSON") from None
    x.extra["poll"] = parse_poll(document)
    # Client authentication reads these as it would read a form's parameters.
    if isinstance(document, dict):
        for name in CREDENTIAL_MEMBERS:
            value = document.get(name)
            if isinstance(value, str):
                x.form[name] = value


async def find_receiver(x: Exchange) -> None:
    receiver_id = x.request.path_params["receiver_id"]
    receiver = await x.services.store.get_receiver(x.tenant.tenant_id, receiver_id)
    if receiver is None or receiver.delivery != "poll":
        raise NotFound("no poll receiver of that id")
    if receiver.client_id != x.authenticated.client_id:
        raise Forbidden("the receiver polls as another client")
    x.extra["receiver"] = receiver
    x.log(receiver_id=receiver_id)


async def acknowledge(x: Exchange) -> None:
    """Move the cursor to the latest SET acknowledged (or reported), and log them."""
    receiver: Receiver = x.extra["receiver"]
    poll: PollRequest = x.extra["poll"]
    state = await _state(x, receiver)
    last = await x.services.store.last_event_id(x.tenant.tenant_id)
    log: list[DeliveryAttempt] = []
    acknowledged: set[int] = set()
    reported: list[tuple[str, str, str | None]] = [(jti, "acknowledged", None) for jti in poll.ack]
    reported += [(jti, "set_error", detail) for jti, detail in poll.set_errs]
    for jti, outcome, detail in reported:
        event_id = event_id_of(jti)
        if event_id is None or event_id > last or set_jti(event_id, receiver.receiver_id) != jti:
            continue  # not a SET of this receiver: nothing to acknowledge
        log.append(DeliveryAttempt(x.now, event_id, outcome, detail=detail))
        if event_id > state.cursor:
            acknowledged.add(event_id)
    x.log(acknowledged=len(acknowledged))
    if log:
        log.sort(key=lambda entry: entry.event_id)
        state = dataclasses.replace(
            state,
            cursor=max([state.cursor, *acknowledged]),
            delivered=state.delivered + len(acknowledged),
        )
        await x.services.store.record_delivery(state, "", log, KEEP_LOG)
    x.extra["state"] = state


async def answer(x: Exchange) -> None:
    receiver: Receiver = x.extra["receiver"]
    poll: PollRequest = x.extra["poll"]
    state: ReceiverState = x.extra["state"]
    notifier = x.services.notifier
    deadline = x.now + LONG_POLL_S
    while True:
        stamp = notifier.stamp(x.tenant.tenant_id)
        events, more, skip_to = await _pending(x, receiver, state.cursor, poll.max_events)
        if skip_to > state.cursor:
            # Nothing of the receiver's types up to there: no need to read it again.
            state = dataclasses.replace(state, cursor=skip_to)
            await x.services.store.record_delivery(state, "", [], KEEP_LOG)
        ready = poll.return_immediately or poll.max_events == 0 or events
        left = deadline - x.services.clock()
        if ready or left <= 0 or notifier.stopped:
            break
        await notifier.wait(x.tenant.tenant_id, stamp, min(left, LONG_POLL_S))
    sets: dict[str, str] = {}
    for event in events:
        jti = set_jti(event.id, receiver.receiver_id)
        sets[jti] = await sign_event(x.services, x.tenant, receiver, event, x.now)
    x.log(sets=len(sets))
    x.response = JSONResponse({"sets": sets, "moreAvailable": more}, headers=NO_STORE)


async def _state(x: Exchange, receiver: Receiver) -> ReceiverState:
    state = await x.services.store.get_receiver_state(x.tenant.tenant_id, receiver.receiver_id)
    if state is None:
        raise NotFound("no poll receiver of that id")
    return state


async def _pending(
    x: Exchange, receiver: Receiver, cursor: int, limit: int
) -> tuple[list[Event], bool, int]:
    """Up to ``limit`` events of the receiver's types after ``cursor``, whether more are
    there, and the id of the last event read before the first of them (the cursor may
    skip to it); a bounded number of pages is read."""
    types = frozenset(receiver.events)
    found: list[Event] = []
    skip_to = cursor
    for _ in range(SCAN_PAGES):
        page = await x.services.store.list_events(x.tenant.tenant_id, cursor, PAGE)
        for event in page:
            if event_uri(event) not in types:
                if not found:
                    skip_to = event.id
                continue
            if len(found) == limit:
                return found, True, skip_to
            found.append(event)
        if len(page) < PAGE:
            return found, False, skip_to
        cursor = page[-1].id
    return found, True, skip_to


STEPS: tuple[Step, ...] = (
    parse_body,
    limit_failures(authenticate_client),
    require_confidential_client("SET polling"),
    require_scope(SCOPE),
    find_receiver,
    acknowledge,
    answer,
)


async def set_poll_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, "set_poll"), STEPS)
