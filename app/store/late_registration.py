"""Credentials registered after a revocation that would have taken them: what both
backends do to a registration batch before inserting it.

An authorization server may register a token some time after it issued it. If a
revocation with a not-before mark that covers the token (``cascade.covering_marks``:
``token_type_hint=all``, a withdrawal, a ``subject`` or grant cascade) came in between,
the token was issued before that revocation, which would have taken it: it is
registered revoked (``cascade.registered_state``). Only credentials with an ``iat`` can
be placed before a mark; the marks are read in the registering transaction.

Retention drops a mark some time after it was set (``app.retention``), so a credential
registered later still can be one that a dropped mark covered. The tenant's retention
horizon (``Store.retention_horizon``) is the greatest cut-off with which its marks or
ended sessions were purged, written in the purge's transaction (MongoDB: before its
delete); it is read with the marks. A credential issued before it (``iat``) and not yet
expired may have been under a mark that is gone, and it lives longer than the tenant's
declared bound (``retention.max_token_lifetime_s`` plus the margin had passed between
the horizon and the purge), which JWTs are refused for already
(``app.oauth.rfc9068.outlives``): it is registered revoked (``BEYOND_HORIZON``). A
tenant that never purged anything has no horizon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from app.models import Credential, MarkKind
from app.oauth.cascade import covering_marks, registered_state

MarkKey = tuple[MarkKind, str]

BEYOND_HORIZON = "retention_horizon"
"""``revoked_cause`` of a credential registered revoked because it was issued before the
tenant's retention horizon."""


def wanted_marks(credentials: Sequence[Credential]) -> dict[MarkKind, list[str]]:
    """The marks that could cover a credential of the batch, by kind; none for those
    without an ``iat``."""
    wanted: dict[MarkKind, dict[str, None]] = {}
    for c in credentials:
        if c.iat is not None:
            for kind, key in covering_marks(c):
                wanted.setdefault(kind, {})[key] = None
    return {kind: list(keys) for kind, keys in wanted.items()}


def as_registered(
    credentials: Sequence[Credential],
    marks: Mapping[MarkKey, int],
    horizon: int | None,
    now: int,
) -> list[Credential]:
    """The batch as it is to be stored at ``now``, ``marks`` holding the times of those
    of ``wanted_marks`` that are set, ``horizon`` the tenant's retention horizon."""
    if not marks and horizon is None:
        return list(credentials)
    return [
        within_horizon(
            registered_state(
                c, max((marks[k] for k in covering_marks(c) if k in marks), default=None)
            ),
            horizon,
            now,
        )
        for c in credentials
    ]


def within_horizon(c: Credential, horizon: int | None, now: int) -> Credential:
    """``c`` revoked as of the horizon when it was issued before it and is live at
    ``now``; an expired one is left as it is (it is not active either way), and one
    without ``iat`` cannot be placed before it."""
    if horizon is None or c.iat is None or c.iat >= horizon or c.exp <= now:
        return c
    if c.revoked_at is not None:
        return c
    return replace(c, revoked_at=horizon, revoked_cause=BEYOND_HORIZON)
