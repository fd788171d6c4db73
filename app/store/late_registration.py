"""Credentials registered after a revocation that would have taken them: what both
backends do to a registration batch before inserting it.

An authorization server may register a token some time after it issued it. If a
revocation with a not-before mark that covers the token (``cascade.covering_marks``:
``token_type_hint=all``, a withdrawal, a ``subject`` or grant cascade) came in between,
the token was issued before that revocation, which would have taken it: it is
registered revoked (``cascade.registered_state``). Only credentials with an ``iat`` can
be placed before a mark; the marks are read in the registering transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.models import Credential, MarkKind
from app.oauth.cascade import covering_marks, registered_state

MarkKey = tuple[MarkKind, str]


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
    credentials: Sequence[Credential], marks: Mapping[MarkKey, int]
) -> list[Credential]:
    """The batch as it is to be stored, ``marks`` holding the times of those of
    ``wanted_marks`` that are set."""
    if not marks:
        return list(credentials)
    return [
        registered_state(c, max((marks[k] for k in covering_marks(c) if k in marks), default=None))
        for c in credentials
    ]
