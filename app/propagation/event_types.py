"""The event types of Security Event Tokens (RFC 8417) and the feed's types they carry.

An ended session is the OpenID Shared Signals Framework's CAEP ``session-revoked``; no
registered type says "these credentials were revoked by the authorization server's
revocation service", so the rest are URIs of ours, one per feed ``type``, documented in
``docs/PROPAGATION.md``. Receivers choose types by URI or by the feed's short name.
"""

from __future__ import annotations

OURS = "https://schemas.revocation-service.dev/secevent/"
"""The prefix of the event type URIs this service defines."""
CAEP_SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"

FEED_TYPES = (
    "revoked",
    "session_ended",
    "plugin_veto",
    "plugin_rejected",
    "plugin_failed",
    "plugin_narrowed",
    "plugin_widened",
)
"""Every ``type`` the events feed has (``Event.type``)."""

URI_OF: dict[str, str] = {
    short: CAEP_SESSION_REVOKED if short == "session_ended" else OURS + short.replace("_", "-")
    for short in FEED_TYPES
}
SHORT_OF: dict[str, str] = {uri: short for short, uri in URI_OF.items()}

DEFAULT_TYPES = ("revoked", "session_ended")
"""What a receiver gets when it names none: what a resource server acts on."""


def event_type_uri(name: str) -> str | None:
    """The URI of a feed type given by short name or URI; None when unknown."""
    if name in URI_OF:
        return URI_OF[name]
    return name if name in SHORT_OF else None
