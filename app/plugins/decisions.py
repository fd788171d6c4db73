"""What hooks return, typed, and the JSON forms that sandboxed plugins return instead.

``decide_*`` turn either form into the typed one, or raise ``InvalidDecision`` (a
failure of the plugin, handled by the tenant's failure mode).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.settings import CASCADE_POLICIES

HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
RESERVED_HEADERS = frozenset(
    {
        "cache-control",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "pragma",
        "retry-after",
        "set-cookie",
        "transfer-encoding",
        "www-authenticate",
        "x-request-id",
    }
)
"""Headers the service sets itself; ``access-control-*`` too (CORS is the service's)."""
MAX_ITEMS = 100
MAX_HEADER_VALUE = 4096


def header_value_ok(text: object) -> bool:
    """One line of printable ASCII (what every HTTP stack sends as it is)."""
    return (
        isinstance(text, str)
        and len(text) <= MAX_HEADER_VALUE
        and text.isascii()
        and text.isprintable()
    )


class InvalidDecision(ValueError):
    """A hook returned something its spec does not allow."""


@dataclass(frozen=True, slots=True)
class Reject:
    """``pre_auth``: answer this OAuth error now."""

    status: int
    error: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``pre_auth``: the request is this client of the tenant."""

    client_id: str


PreAuthDecision = Reject | Authenticate


@dataclass(frozen=True, slots=True)
class Veto:
    """``pre_revoke``: revoke nothing; the caller still gets 200."""

    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlanChange:
    """``pre_revoke``: re-plan under ``cascade`` and/or revoke these too."""

    cascade: str | None = None
    grant_ids: tuple[str, ...] = ()
    subjects: tuple[tuple[str, str], ...] = ()
    """(client_id, sub) pairs."""
    device_session_ids: tuple[str, ...] = ()

    @property
    def widens(self) -> bool:
        return bool(self.grant_ids or self.subjects or self.device_session_ids)


PlanDecision = Veto | PlanChange


@dataclass(frozen=True, slots=True)
class ResponseAdditions:
    """``response_mapping``: JSON members and headers to add."""

    attributes: Mapping[str, Any]
    headers: Mapping[str, str]


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidDecision(f"{what} must be an object")
    return value


def _text(value: Any, what: str, max_len: int = 1024) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidDecision(f"{what} must be a non-empty string of at most {max_len}")
    return value


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_ITEMS:
        raise InvalidDecision(f"{what} must be a list of at most {MAX_ITEMS} strings")
    return tuple(_text(v, what) for v in value)


def decide_pre_auth(value: Any) -> PreAuthDecision | None:
    if value is None:
        return None
    if isinstance(value, Reject | Authenticate):
        decision: PreAuthDecision = value
    else:
        body = _object(value, "a pre_auth decision")
        if set(body) == {"reject"}:
            reject = _object(body["reject"], "reject")
            description = reject.get("error_description")
            decision = Reject(
                reject.get("status", 400),
                _text(reject.get("error", "invalid_request"), "reject.error", 64),
                None if description is None else _text(description, "error_description"),
            )
        elif set(body) == {"authenticate"}:
            who = _object(body["authenticate"], "authenticate")
            decision = Authenticate(_text(who.get("client_id"), "authenticate.client_id", 255))
        else:
            raise InvalidDecision('a pre_auth decision is {"reject": …} or {"authenticate": …}')
    if isinstance(decision, Reject) and (
        isinstance(decision.status, bool)
        or not isinstance(decision.status, int)
        or not 400 <= decision.status <= 499
        or not re.fullmatch(r"[a-z_]{1,64}", decision.error)
    ):
        raise InvalidDecision("reject needs a 4xx status and an OAuth error code")
    return decision


def decide_pre_revoke(value: Any) -> PlanDecision | None:
    if value is None:
        return None
    if isinstance(value, Veto | PlanChange):
        decision: PlanDecision = value
    else:
        body = _object(value, "a pre_revoke decision")
        if "veto" in body:
            if set(body) != {"veto"}:
                raise InvalidDecision("a veto stands alone")
            reason = body["veto"]
            decision = Veto("" if reason is True else _text(reason, "veto"))
        else:
            unknown = set(body) - {"cascade", "widen"}
            if unknown or not body:
                raise InvalidDecision('a pre_revoke decision is {"veto"}, {"cascade"}, {"widen"}')
            widen = _object(body.get("widen", {}), "widen")
            if set(widen) - {"grant_ids", "subjects", "device_session_ids"}:
                raise InvalidDecision("widen takes grant_ids, subjects, device_session_ids")
            subjects = widen.get("subjects", [])
            if not isinstance(subjects, list) or len(subjects) > MAX_ITEMS:
                raise InvalidDecision("widen.subjects must be a list of {client_id, sub}")
            decision = PlanChange(
                body.get("cascade"),
                _texts(widen.get("grant_ids", []), "widen.grant_ids"),
                tuple(
                    (
                        _text(_object(s, "subject").get("client_id"), "client_id", 255),
                        _text(s.get("sub"), "sub"),
                    )
                    for s in subjects
                ),
                _texts(widen.get("device_session_ids", []), "widen.device_session_ids"),
            )
    if isinstance(decision, PlanChange) and decision.cascade not in (None, *CASCADE_POLICIES):
        raise InvalidDecision(f"cascade must be one of {', '.join(CASCADE_POLICIES)}")
    return decision


def decide_response(value: Any) -> ResponseAdditions | None:
    if value is None:
        return None
    if isinstance(value, ResponseAdditions):
        additions = value
    else:
        body = _object(value, "a response_mapping result")
        if set(body) - {"attributes", "headers"}:
            raise InvalidDecision("a response_mapping result has attributes and headers")
        additions = ResponseAdditions(
            _object(body.get("attributes", {}), "attributes"),
            _object(body.get("headers", {}), "headers"),
        )
    for name, text in additions.headers.items():
        lowered = name.lower()
        if (
            not HEADER_NAME_RE.match(name)
            or lowered in RESERVED_HEADERS
            or lowered.startswith("access-control-")
        ):
            raise InvalidDecision(f"header {name!r} may not be set by a plugin")
        if not header_value_ok(text):
            raise InvalidDecision(f"header {name!r} needs a line of printable ASCII")
    return additions
