"""Push-Based Security Event Token (SET) Delivery Using HTTP (RFC 8935), the
transmitter's side: one SET POSTed to a receiver, and what its answer means.

- Section 2: ``Content-Type: application/secevent+jwt``, ``Accept: application/json``,
  the receiver's own ``Authorization`` header value where it gave one.
- Section 2.2: a ``202`` acknowledges the SET; any ``2xx`` is taken as the same.
- Section 2.3: a ``400`` with ``{"err": …, "description": …}`` says the receiver
  refused this SET: it is logged and not sent again, except for ``authentication_failed``
  and ``access_denied`` (section 2.4), which are about the transmitter, not the SET, so
  every later SET would meet them too: they are failures, retried until the receiver is
  paused. Anything else (no answer, a time-out, ``5xx``, a redirect, another status, a
  ``400`` without such a body) is a failure: the same SET is tried again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import StrEnum

from app.outbound import FetchRefused, HostRules
from app.outbound_channel import PostChannel

CONTENT_TYPE = "application/secevent+jwt"
NOT_ABOUT_THE_SET = frozenset({"authentication_failed", "access_denied"})
"""RFC 8935 section 2.4 error codes that refuse the transmitter, whatever the SET."""
MAX_DETAIL = 200


class Outcome(StrEnum):
    DELIVERED = "delivered"
    REJECTED = "set_error"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Outcome
    status: int | None
    """The receiver's HTTP status; None when there was no answer."""
    detail: str | None
    """Why, for the delivery log: the receiver's ``err`` (and description) or the
    failure; never the SET or the authorization header."""
    duration_ms: int


def set_error(body: bytes) -> tuple[str, str] | None:
    """The ``err`` and ``description`` of an RFC 8935 error body; None when it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("err"), str):
        return None
    description = document.get("description")
    return document["err"], description if isinstance(description, str) else ""


def judge(status: int, body: bytes) -> tuple[Outcome, str | None]:
    """What the receiver's answer means for the SET (see the module's docstring)."""
    if 200 <= status < 300:
        return Outcome.DELIVERED, None
    if status == 400 and (error := set_error(body)) is not None:
        err, description = error
        detail = f"{err}: {description}" if description else err
        outcome = Outcome.FAILED if err in NOT_ABOUT_THE_SET else Outcome.REJECTED
        return outcome, _short(detail)
    return Outcome.FAILED, f"HTTP {status}"


def _short(text: str) -> str:
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


async def push(
    channel: PostChannel, rules: HostRules, set_token: str, authorization: str | None
) -> PushResult:
    """POST one SET to the channel's receiver under the host rules and judge the answer."""
    headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    started = time.monotonic()
    try:
        reply = await channel.post(rules, set_token.encode("ascii"), headers)
    except FetchRefused as exc:
        return PushResult(Outcome.FAILED, None, _short(str(exc)), _ms_since(started))
    outcome, detail = judge(reply.status, reply.body)
    return PushResult(outcome, reply.status, detail, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
