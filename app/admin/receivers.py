"""Receiver operations: register or replace, read, list, delete (shared by the admin API
and the CLI).

A receiver takes the tenant's events as Security Event Tokens, pushed to its ``url``
(RFC 8935) or polled by one of the tenant's clients (RFC 8936). Fields:

- ``delivery``: ``push`` [default] or ``poll``;
- ``url`` (push, required): ``https``, its host in ``key_fetch.allowed_hosts``; a literal
  address or ``localhost`` must be public. The operator's ``--fetch-allow-private``
  lifts the address rule and allows ``http`` (a receiver on the same host or network);
  names are resolved and checked again at every delivery;
- ``authorization`` (push): the ``Authorization`` header value to send, write-only,
  sealed under the tenant's key. Replacing a receiver without it keeps the sealed value
  while the URL stays the same (a new URL drops it: it was given for the old one);
  ``""`` removes it;
- ``events``: feed types by short name or URI [``revoked``, ``session_ended``];
- ``audience``: the SETs' ``aud`` [the URL, or the client id];
- ``client_id`` (poll, required): a client of the tenant;
- ``start_after``: an event id; the first SET is of the first event after it [the
  tenant's latest event: events from now on]. Used on creation; replacing a receiver
  keeps its cursor (a repeated ``PUT`` with the same body changes nothing);
- ``receiver_id`` may repeat the path.

Replacing a paused receiver resumes it. A tenant has at most ``MAX_RECEIVERS``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from app.admin.events import MAX_CURSOR, MAX_LIMIT
from app.admin.fields import MAX_ID, as_object, reject_unknown, same_as_path, string
from app.admin.tenants import require_tenant
from app.directory import TenantView
from app.errors import FieldError, NotFound
from app.models import DeliveryAttempt, Receiver, ReceiverState, Tenant
from app.outbound import HostRules
from app.propagation.event_types import DEFAULT_TYPES, SHORT_OF, event_type_uri
from app.services import Services
from app.types import TenantId

FIELDS = (
    "receiver_id",
    "delivery",
    "url",
    "authorization",
    "events",
    "audience",
    "client_id",
    "start_after",
)
DELIVERIES = ("push", "poll")
RECEIVER_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_RECEIVERS = 100
"""Per tenant: each is a delivery worker's round trips; beyond it, ``409``."""
MAX_URL = 2048
MAX_AUTHORIZATION = 4096
HEADER_VALUE_RE = re.compile(r"^[\x20-\x7e]*$")
"""Visible ASCII and spaces: no line breaks that would end the header."""
MAX_EVENT_TYPES = 32
LOG_SHOWN = 50
"""Log entries a ``GET`` of one receiver shows, newest first."""
LAG_SCAN = 10_000
"""Events after the cursor that ``lag`` looks at, at most."""


@dataclass(frozen=True, slots=True)
class ReceiverView:
    """A receiver with its delivery state and, when read alone, its log and lag."""

    receiver: Receiver
    state: ReceiverState | None
    log: Sequence[DeliveryAttempt] | None = None
    lag: int | None = None


def check_receiver_id(receiver_id: str) -> str:
    if not RECEIVER_ID_RE.match(receiver_id):
        raise FieldError("receiver_id", "must be 1 to 64 of A-Z a-z 0-9 . _ -")
    return receiver_id


def check_url(url: str, rules: HostRules) -> str:
    """A push URL the tenant's host rules allow, as far as can be told without resolving
    its name (the delivery resolves it, and checks every address, each time)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise FieldError("url", "is not a valid URL") from None
    schemes = ("https", "http") if rules.allow_private else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        needs = "an absolute https URL" + (" (or http)" if rules.allow_private else "")
        raise FieldError("url", f"must be {needs}")
    if parts.username is not None or parts.password is not None:
        raise FieldError("url", "must not hold credentials: give them as authorization")
    if parts.fragment:
        raise FieldError("url", "must not have a fragment")
    host = parts.hostname
    if not rules.host_allowed(host):
        raise FieldError("url", f"{host} is not in key_fetch.allowed_hosts")
    if not rules.allow_private:
        if host == "localhost" or host.endswith(".localhost"):
            raise FieldError("url", "must not name the local host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None and not rules.address_allowed(str(literal)):
            raise FieldError("url", f"{host} is not a public address")
    return url


def _event_types(body: Mapping[str, Any]) -> tuple[str, ...]:
    given = body.get("events")
    if given is None:
        return tuple(event_type_uri(name) or name for name in DEFAULT_TYPES)
    if not isinstance(given, list) or not given:
        raise FieldError("events", "must be a non-empty list of event types")
    if len(given) > MAX_EVENT_TYPES:
        raise FieldError("events", f"must name at most {MAX_EVENT_TYPES} types")
    uris: list[str] = []
    for index, name in enumerate(given):
        uri = event_type_uri(name) if isinstance(name, str) else None
        if uri is None:
            raise FieldError(f"events[{index}]", "is not an event type of the feed")
        uris.append(uri)
    return tuple(dict.fromkeys(uris))


def _authorization(body: Mapping[str, Any]) -> str | None:
    value = string(body, "authorization", max_length=MAX_AUTHORIZATION, empty=True)
    if value is not None and not HEADER_VALUE_RE.match(value):
        raise FieldError("authorization", "must be visible ASCII (a header value)")
    return value


def _start_after(body: Mapping[str, Any]) -> int | None:
    value = body.get("start_after")
    if value is None:
        return None
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        raise FieldError("start_after", "must be an event id (a cursor of the events feed)")
    if len(value) > 19 or int(value) > MAX_CURSOR:
        raise FieldError("start_after", "must be an event id (a cursor of the events feed)")
    return int(value)


def _not_for(body: Mapping[str, Any], delivery: str, names: tuple[str, ...]) -> None:
    for name in names:
        if body.get(name) is not None:
            raise FieldError(name, f"is not for {delivery} delivery")


def receiver_from_json(
    services: Services,
    tenant: Tenant,
    receiver_id: str,
    body: Any,
    *,
    existing: Receiver | None,
    now: int,
) -> tuple[Receiver, int | None]:
    """Validate ``body``: the record to store (the authorization sealed), and the
    ``start_after`` given, if any. The poll client's existence is the caller's check."""
    check_receiver_id(receiver_id)
    body = as_object(body)
    reject_unknown(body, FIELDS)
    same_as_path(body, "receiver_id", receiver_id)
    delivery = body.get("delivery")
    if delivery is None:
        delivery = "push"
    if delivery not in DELIVERIES:
        raise FieldError("delivery", "must be push or poll")
    events = _event_types(body)
    audience = string(body, "audience", max_length=MAX_URL)
    start_after = _start_after(body)
    url = client_id = sealed = None
    if delivery == "push":
        _not_for(body, delivery, ("client_id",))
        given_url = string(body, "url", required=True, max_length=MAX_URL)
        assert given_url is not None
        rules = services.host_rules(TenantView.of(tenant))
        url = check_url(given_url, rules)
        authorization = _authorization(body)
        if authorization:
            sealed = services.keys.seal_secret(
                tenant.tenant_id, tenant.key_salt, authorization, f"receiver:{receiver_id}"
            )
        elif authorization is None and existing is not None and existing.url == url:
            sealed = existing.authorization_sealed
    else:
        _not_for(body, delivery, ("url", "authorization"))
        client_id = string(body, "client_id", required=True, max_length=MAX_ID)
    receiver = Receiver(
        tenant_id=tenant.tenant_id,
        receiver_id=receiver_id,
        delivery=delivery,
        events=events,
        url=url,
        authorization_sealed=sealed,
        client_id=client_id,
        audience=audience,
        created_at=existing.created_at if existing else now,
        updated_at=now,
    )
    return receiver, start_after


async def put_receiver(
    services: Services, tenant_id: TenantId, receiver_id: str, body: Any
) -> tuple[ReceiverView, bool]:
    """Create or replace; the receiver with its state, and whether it was created."""
    tenant = await require_tenant(services, tenant_id)
    store = services.store
    existing = await store.get_receiver(tenant_id, check_receiver_id(receiver_id))
    receiver, start_after = receiver_from_json(
        services, tenant, receiver_id, body, existing=existing, now=services.clock()
    )
    poller = receiver.client_id
    if poller is not None and await store.get_client(tenant_id, poller) is None:
        raise FieldError("client_id", "is not a registered client of this tenant")
    latest = await store.last_event_id(tenant_id)
    if start_after is not None and start_after > latest:
        raise FieldError("start_after", f"is after the tenant's latest event ({latest})")
    cursor = latest if start_after is None else start_after
    stored, created = await store.put_receiver(receiver, cursor, limit=MAX_RECEIVERS)
    return ReceiverView(stored, await store.get_receiver_state(tenant_id, receiver_id)), created


async def get_receiver(services: Services, tenant_id: TenantId, receiver_id: str) -> ReceiverView:
    """The receiver, its state, its latest ``LOG_SHOWN`` attempts and its lag."""
    await require_tenant(services, tenant_id)
    store = services.store
    receiver = await store.get_receiver(tenant_id, receiver_id)
    if receiver is None:
        raise NotFound("no such receiver")
    state = await store.get_receiver_state(tenant_id, receiver_id)
    log = await store.delivery_log(tenant_id, receiver_id, LOG_SHOWN)
    lag = None if state is None else await lag_of(services, receiver, state.cursor)
    return ReceiverView(receiver, state, log, lag)


async def lag_of(services: Services, receiver: Receiver, cursor: int) -> int:
    """Events of the receiver's types after ``cursor``, among the next ``LAG_SCAN``."""
    wanted = {SHORT_OF[uri] for uri in receiver.events if uri in SHORT_OF}
    count = scanned = 0
    while scanned < LAG_SCAN:
        page = await services.store.list_events(receiver.tenant_id, cursor, MAX_LIMIT)
        count += sum(1 for event in page if event.type in wanted)
        scanned += len(page)
        if len(page) < MAX_LIMIT:
            break
        cursor = page[-1].id
    return count


async def list_receivers(services: Services, tenant_id: TenantId) -> list[ReceiverView]:
    await require_tenant(services, tenant_id)
    store = services.store
    return [
        ReceiverView(r, await store.get_receiver_state(tenant_id, r.receiver_id))
        for r in await store.list_receivers(tenant_id)
    ]


async def delete_receiver(services: Services, tenant_id: TenantId, receiver_id: str) -> None:
    """The receiver, its delivery state and its log."""
    await require_tenant(services, tenant_id)
    if not await services.store.delete_receiver(tenant_id, receiver_id):
        raise NotFound("no such receiver")


# --- master key rotation (``app.admin.key_rotation``) ---------------------------------------


def _seal_context(receiver: Receiver) -> str:
    return f"receiver:{receiver.receiver_id}"


async def seal_versions(services: Services, tenant: Tenant) -> list[int | None]:
    """The master key version of each sealed authorization (None: no key opens it)."""
    return [
        services.keys.seal_version(tenant.tenant_id, tenant.key_salt, sealed, _seal_context(r))
        for r in await services.store.list_receivers(tenant.tenant_id)
        if (sealed := r.authorization_sealed) is not None
    ]


async def reseal(services: Services, tenant: Tenant) -> tuple[int, int]:
    """Seal the tenant's receivers' authorizations under the current master key, leaving
    their delivery state alone: how many were sealed again, and how many no key opens
    (those receivers need their authorization given again)."""
    keys, store = services.keys, services.store
    tenant_id, salt = tenant.tenant_id, tenant.key_salt
    resealed = unopened = 0
    for receiver in await store.list_receivers(tenant_id):
        sealed = receiver.authorization_sealed
        if sealed is None:
            continue
        context = _seal_context(receiver)
        version = keys.seal_version(tenant_id, salt, sealed, context)
        if version is None:
            unopened += 1
            continue
        if version == keys.current.id:
            continue
        value = keys.open_secret(tenant_id, salt, sealed, context)
        again = replace(
            receiver, authorization_sealed=keys.seal_secret(tenant_id, salt, value, context)
        )
        # Not over a change an admin made since the listing (it sealed under the current
        # key anyway).
        if await store.get_receiver(tenant_id, receiver.receiver_id) == receiver:
            await store.put_receiver(again, 0, resume=False)
            resealed += 1
    return resealed, unopened
