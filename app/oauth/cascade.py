"""What a revocation takes down: the tenant's cascade policy (``revocation.cascade``).

Each policy turns the presented credential into a ``RevocationPlan`` that the store
applies in one transaction. The table this implements is in CONTRACT.md section 4.1.

A JWT (``JwtCredential``: an RFC 9068 access token or a JWT device secret) goes through
the same policies: its claims stand in for a registered credential's fields, and the
plan denies it until its ``exp`` where a registered credential's plan revokes its row.
The policies' marks are what take down the other JWTs of a grant or a (client, subject)
pair, which no selector can reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from app.models import (
    OAUTH_TOKENS,
    ByClient,
    ByClientSubject,
    ByGrant,
    ByHash,
    BySession,
    Credential,
    DenyEntry,
    EventDraft,
    JwtCredential,
    MarkKind,
    NotBeforeMark,
    RevocationPlan,
    Selector,
    TokenType,
)
from app.types import TokenHash

ACCESS = frozenset({TokenType.ACCESS_TOKEN})
REFRESH = frozenset({TokenType.REFRESH_TOKEN})

Policy = Callable[[Credential, int], RevocationPlan]


def client_subject_key(client_id: str, sub: str) -> str:
    return f"{client_id}\x00{sub}"


def covering_marks(c: Credential) -> tuple[tuple[MarkKind, str], ...]:
    """The not-before marks that revoke ``c`` when it was issued (``iat``) at or before
    them: a JWT whenever it is presented (``rfc9068``), a registered credential when it
    is registered after the mark (``registered_state``).

    Its client's mark (``token_type_hint=all``, which takes every credential of the
    client) and its subject's (a Global Token Revocation, which takes every credential
    of the subject at every client) cover every type; its (client, subject) pair's
    covers access and refresh tokens (what the ``subject`` policy and a withdrawal both
    take); its grant's covers access tokens (what every policy that sets a grant mark
    takes). A device secret is under its client's and its subject's marks only:
    ``subject`` leaves device secrets alone, and SPID's and CIE's grant marks go with
    the grant's access tokens alone.
    """
    marks = [(MarkKind.CLIENT, c.client_id)]
    if c.sub is not None:
        marks.append((MarkKind.SUBJECT, c.sub))
    if c.type is TokenType.DEVICE_SECRET:
        return tuple(marks)
    if c.sub is not None:
        marks.append((MarkKind.CLIENT_SUBJECT, client_subject_key(c.client_id, c.sub)))
    if c.grant_id is not None and c.type is TokenType.ACCESS_TOKEN:
        marks.append((MarkKind.GRANT, c.grant_id))
    return tuple(marks)


NOT_BEFORE = "not_before"
"""``revoked_cause`` of a credential revoked by a not-before mark rather than a plan."""


def registered_state(c: Credential, mark: int | None) -> Credential:
    """``c`` as it is to be registered, ``mark`` being the latest of its
    ``covering_marks``: revoked from the start when its ``iat`` is at or before the mark.
    It was issued before that revocation, which would have taken it had it been
    registered in time. Without an ``iat``, registration time stands in for it: a
    credential registered after the mark is taken as issued after it."""
    if mark is None or c.iat is None or c.iat > mark or c.revoked_at is not None:
        return c
    return replace(c, revoked_at=mark, revoked_cause=NOT_BEFORE)


def _revoked_event(c: Credential, now: int, cause: str) -> EventDraft:
    return EventDraft(
        type="revoked",
        cause=cause,
        time=now,
        client_id=c.client_id,
        sub=c.sub,
        grant_id=c.grant_id,
        token_type=c.type.value,
        jti=c.jti if isinstance(c, JwtCredential) else None,
        device_session_id=c.device_session_id,
    )


def session_ended_event(
    device_session_id: str | None,
    now: int,
    cause: str,
    *,
    client_id: str | None = None,
    sub: str | None = None,
    grant_id: str | None = None,
) -> EventDraft:
    """The ``session_ended`` event the authorization server acts on."""
    return EventDraft(
        type="session_ended",
        cause=cause,
        time=now,
        client_id=client_id,
        sub=sub,
        grant_id=grant_id,
        device_session_id=device_session_id,
    )


def _session_ended(c: Credential, now: int, cause: str, grant_id: str | None) -> EventDraft:
    return session_ended_event(
        c.device_session_id, now, cause, client_id=c.client_id, sub=c.sub, grant_id=grant_id
    )


def _plan(
    c: Credential,
    now: int,
    cause: str,
    selectors: tuple[Selector, ...] = (),
    *,
    marks: tuple[NotBeforeMark, ...] = (),
    delete_grants_of: tuple[tuple[str, str], ...] = (),
    end_sessions: tuple[str, ...] = (),
    session_tokens_end: bool = True,
    extra_events: tuple[EventDraft, ...] = (),
) -> RevocationPlan:
    primary: TokenHash | None = None
    deny: DenyEntry | None = None
    own: tuple[Selector, ...] = ()
    if isinstance(c, JwtCredential):
        # Never registered: denied until it expires (applied only if the entry is new).
        deny = c.deny_entry
    else:
        primary, own = c.token_hash, (ByHash(c.token_hash),)
    return RevocationPlan(
        revoked_at=now,
        cause=cause,
        primary=primary,
        primary_deny=deny,
        selectors=(*own, *selectors),
        delete_grants_of=delete_grants_of,
        end_sessions=end_sessions,
        session_tokens_end=session_tokens_end,
        marks=marks,
        events=(_revoked_event(c, now, cause), *extra_events),
    )


def _grant_mark(c: Credential, now: int) -> tuple[NotBeforeMark, ...]:
    return (NotBeforeMark(MarkKind.GRANT, c.grant_id, now),) if c.grant_id else ()


def token_policy(c: Credential, now: int) -> RevocationPlan:
    return _plan(c, now, "token")


def grant_policy(c: Credential, now: int) -> RevocationPlan:
    if c.grant_id is None:
        return _plan(c, now, "grant")
    return _plan(c, now, "grant", (ByGrant(c.grant_id),), marks=_grant_mark(c, now))


def subject_policy(c: Credential, now: int) -> RevocationPlan:
    if c.sub is None:
        return _plan(c, now, "subject")
    return _plan(
        c,
        now,
        "subject",
        (ByClientSubject(c.client_id, c.sub, OAUTH_TOKENS),),
        delete_grants_of=((c.client_id, c.sub),),
        marks=(
            NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key(c.client_id, c.sub), now),
        ),
    )


def _other_type_of_grant(c: Credential, types: frozenset[TokenType]) -> tuple[Selector, ...]:
    return (ByGrant(c.grant_id, types),) if c.grant_id else ()


def _refresh_takes_grant_access_tokens(c: Credential, now: int, cause: str) -> RevocationPlan:
    """SPID and CIE alike: a refresh token takes its grant's access tokens."""
    return _plan(c, now, cause, _other_type_of_grant(c, ACCESS), marks=_grant_mark(c, now))


def spid_policy(c: Credential, now: int) -> RevocationPlan:
    """SPID: an access token takes its grant's refresh tokens and ends its SSO session
    (so the session's device secret), and the subject's other tokens stay valid, those
    bound to the session too; a refresh token takes its grant's access tokens."""
    if c.type is TokenType.REFRESH_TOKEN:
        return _refresh_takes_grant_access_tokens(c, now, "spid")
    return _plan(
        c,
        now,
        "spid",
        _other_type_of_grant(c, REFRESH),
        end_sessions=(c.device_session_id,) if c.device_session_id else (),
        session_tokens_end=False,
        extra_events=(_session_ended(c, now, "spid", c.grant_id),),
    )


def cie_policy(c: Credential, now: int) -> RevocationPlan:
    """CIE: an access token alone; a refresh token takes its grant's access tokens."""
    if c.type is TokenType.REFRESH_TOKEN:
        return _refresh_takes_grant_access_tokens(c, now, "cie")
    return _plan(c, now, "cie")


POLICIES: dict[str, Policy] = {
    "token": token_policy,
    "grant": grant_policy,
    "subject": subject_policy,
    "spid": spid_policy,
    "cie": cie_policy,
}


def device_secret_plan(c: Credential, now: int) -> RevocationPlan:
    """A device secret ends its session: every refresh token bound to it, for every client
    of the tenant, is revoked; their access tokens are not (whatever the policy)."""
    if c.device_session_id is None:
        return _plan(c, now, "device_secret")
    return _plan(
        c,
        now,
        "device_secret",
        (BySession(c.device_session_id, REFRESH),),
        end_sessions=(c.device_session_id,),
        extra_events=(_session_ended(c, now, "device_secret", None),),
    )


def plan_for(c: Credential, policy: str, now: int) -> RevocationPlan:
    if c.type is TokenType.DEVICE_SECRET:
        return device_secret_plan(c, now)
    return POLICIES[policy](c, now)


def revoke_all_plan(client_id: str, now: int) -> RevocationPlan:
    """``token_type_hint=all``: every credential of the client, and its JWTs until now."""
    return RevocationPlan(
        revoked_at=now,
        cause="all",
        selectors=(ByClient(client_id),),
        marks=(NotBeforeMark(MarkKind.CLIENT, client_id, now),),
        events=(EventDraft(type="revoked", cause="all", time=now, client_id=client_id),),
    )


GLOBAL_REVOCATION = "global_revocation"


def global_revocation_plan(
    sub: str, client_ids: Iterable[str], sessions: Iterable[str], now: int
) -> RevocationPlan:
    """Global Token Revocation of ``sub``: every credential of the subject at each of
    ``client_ids`` (all types; each a sweep, see ``app.store.sweeps``) and its grant
    records; every credential bound to its device ``sessions``, which end; and a
    not-before mark for the subject that takes its JWTs at every client, and any of its
    credentials registered later with an ``iat`` at or before now."""
    clients = tuple(dict.fromkeys(client_ids))
    ended = tuple(dict.fromkeys(sessions))
    return RevocationPlan(
        revoked_at=now,
        cause=GLOBAL_REVOCATION,
        selectors=(
            *(ByClientSubject(client_id, sub) for client_id in clients),
            *(BySession(session) for session in ended),
        ),
        delete_grants_of=tuple((client_id, sub) for client_id in clients),
        end_sessions=ended,
        marks=(NotBeforeMark(MarkKind.SUBJECT, sub, now),),
        events=(
            EventDraft(type="revoked", cause=GLOBAL_REVOCATION, time=now, sub=sub),
            *(session_ended_event(s, now, GLOBAL_REVOCATION, sub=sub) for s in ended),
        ),
    )
