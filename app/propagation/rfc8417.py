"""Security Event Tokens (RFC 8417) of the tenant's events, as the OpenID Shared Signals
Framework 1.0 profiles them. Pure: no I/O; ``signing_keys.sign`` signs the claims with
the header ``typ`` ``SET_TYP``.

One SET carries one event (SSF 1.0 section 4.1.3). Its subject is the top-level
``sub_id`` (RFC 9493; SSF 1.0 section 4.1.1): the user (``iss_sub``, this issuer's
``sub``) where the event names one; for an ended session a ``complex`` subject of the
session (``opaque``, the ``device_session_id``) and the user; else the client
(``opaque``, the ``client_id``); else, for an event that names neither, the issuer
(``uri``). ``txn`` is the feed's event id, the same in every receiver's SET of the event
and in a redelivery. ``jti`` is the event id and a digest of the receiver, so a
redelivered SET keeps its ``jti`` (receivers deduplicate on it, RFC 8935 section 2) and
two receivers' SETs of one event differ.

The event payload: CAEP 1.0's ``session-revoked`` for ``session_ended``
(``event_timestamp``, ``initiating_entity``); the URIs of ours (``event_types``) carry
``event_timestamp`` and the feed's fields. Never a token or its hash.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from app.directory import TenantView
from app.models import Event
from app.propagation.event_types import CAEP_SESSION_REVOKED, OURS, event_type_uri

SET_TYP = "secevent+jwt"
"""The SET's JOSE header ``typ`` (RFC 8417 section 2.3)."""

ADMIN_CAUSES = frozenset({"withdrawn", "global_revocation"})
"""Causes that an administrative act gives: a subject's withdrawal of a client
(``app.admin.subjects``), a Global Token Revocation (``app.oauth.cascade``). CAEP's
``initiating_entity`` is then ``admin``; a cascade policy's is ``policy``."""

PAYLOAD_FIELDS = ("client_id", "grant_id", "token_type", "jti", "device_session_id")
"""The feed's fields (``Event.to_json``) a payload of ours carries where known, besides
``event_id``, ``cause`` and ``count``; the subject is in ``sub_id``."""

_DIGEST_HEX = 12
_JTI_RE = re.compile(rf"([1-9][0-9]{{0,18}})\.[0-9a-f]{{{_DIGEST_HEX}}}")


def _receiver_digest(receiver_id: str) -> str:
    return hashlib.sha256(receiver_id.encode("utf-8")).hexdigest()[:_DIGEST_HEX]


def set_jti(event_id: int, receiver_id: str) -> str:
    """The SET's ``jti``: unique per (event, receiver), the same on every redelivery."""
    return f"{event_id}.{_receiver_digest(receiver_id)}"


def event_id_of(jti: str) -> int | None:
    """The event id in a ``jti`` of ours (``set_jti``); None for anything else. Whether
    it is this receiver's: ``set_jti(event_id_of(jti), receiver_id) == jti``."""
    found = _JTI_RE.fullmatch(jti)
    if found is None:
        return None
    event_id = int(found.group(1))
    return event_id if event_id < 2**63 else None


def event_uri(event: Event) -> str:
    """The event type URI of the feed type (a type added later gets a URI of ours)."""
    return event_type_uri(event.type) or OURS + event.type.replace("_", "-")


def _user(tenant: TenantView, sub: str) -> dict[str, str]:
    return {"format": "iss_sub", "iss": tenant.settings.issuer, "sub": sub}


def subject_id(tenant: TenantView, event: Event) -> dict[str, Any]:
    """The SET's ``sub_id`` (RFC 9493; the complex subject of SSF 1.0 section 3.2)."""
    if event.type == "session_ended" and event.device_session_id is not None:
        subject: dict[str, Any] = {
            "format": "complex",
            "session": {"format": "opaque", "id": event.device_session_id},
        }
        if event.sub is not None:
            subject["user"] = _user(tenant, event.sub)
        return subject
    if event.sub is not None:
        return _user(tenant, event.sub)
    if event.client_id is not None:
        return {"format": "opaque", "id": event.client_id}
    return {"format": "uri", "uri": tenant.settings.issuer}


def initiating_entity(event: Event) -> str:
    return "admin" if event.cause in ADMIN_CAUSES else "policy"


def event_payload(event: Event) -> dict[str, Any]:
    """What the SET says of the event, under its type URI."""
    if event_uri(event) == CAEP_SESSION_REVOKED:
        return {
            "event_timestamp": event.time,
            "initiating_entity": initiating_entity(event),
            "reason_admin": {"en": f"cause: {event.cause}"},
        }
    payload: dict[str, Any] = {
        "event_timestamp": event.time,
        "event_id": str(event.id),
        "cause": event.cause,
        "count": event.count,
    }
    for name in PAYLOAD_FIELDS:
        value = getattr(event, name)
        if value is not None:
            payload[name] = value
    return payload


def security_event_claims(
    tenant: TenantView, event: Event, audience: str, receiver_id: str, now: int
) -> dict[str, Any]:
    """The claims of the SET that tells ``receiver_id`` (``aud`` ``audience``) of
    ``event``, issued at ``now``."""
    return {
        "iss": tenant.settings.issuer,
        "iat": now,
        "jti": set_jti(event.id, receiver_id),
        "aud": audience,
        "txn": str(event.id),
        "sub_id": subject_id(tenant, event),
        "events": {event_uri(event): event_payload(event)},
    }
