"""Server sessions whose transaction may still be open on the server, and killing them.

A transaction whose operation timed out or lost its connection cannot be aborted while
the server does not answer, and the driver then drops the session without ending it. The
server keeps such a transaction, and every document it wrote stays locked against other
writers (a tenant's event counter: all of that tenant's revocations), until
``transactionLifetimeLimitSeconds`` (60 s by default) has passed. Its session's id is kept
here and the session killed (``killSessions``, which aborts its transaction) when a later
transaction meets a write conflict: that is when it is in the way, and when the server
answers again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError

from app.store.mongodb.deadlines import ABORT_TIMEOUT_S

log = logging.getLogger(__name__)

KEPT = 1_000
"""Most ids kept: past that the oldest are dropped (the server has ended those by then,
or will at its lifetime limit)."""


def cut_off(exc: BaseException) -> bool:
    """``exc`` broke off an operation the server may have received: a timeout or a lost
    connection, not a server that could not be selected (nothing was sent then)."""
    return isinstance(exc, ConnectionFailure) and not isinstance(exc, ServerSelectionTimeoutError)


class AbandonedSessions:
    def __init__(self) -> None:
        self._ids: deque[Mapping[str, Any]] = deque(maxlen=KEPT)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, session: AsyncClientSession) -> None:
        self._ids.append(session.session_id)

    async def kill(self, client: AsyncMongoClient[Any]) -> None:
        """Kill the sessions kept, briefly; keep them for the next time if the server
        does not answer (a refusal would only come again: they are dropped then)."""
        if not self._ids:
            return
        ids = list(self._ids)
        self._ids.clear()
        try:
            with pymongo.timeout(ABORT_TIMEOUT_S):
                await client.admin.command("killSessions", ids)
        except ConnectionFailure:
            self._ids.extendleft(reversed(ids))
        except PyMongoError as exc:
            log.warning("abandoned transactions not killed: %s", type(exc).__name__)
