"""How long the service waits for MongoDB.

Every operation (server selection, a connection, the server's answer) gets
``OPERATION_TIMEOUT_MS``: the client's ``timeoutMS``, PyMongo's client-side operation
timeout. A server that is gone, or stalled with connections to it already open, thus
fails a request's store call within that time, where ``socketTimeoutMS`` (30 s) held it
before. Bulk work (a registration of many credentials, a deleted tenant's data, a mass
revocation's sweep, purges, building indexes) takes longer than that on a healthy server:
each of its transactions or rounds runs in ``bulk()``, one deadline of
``BULK_TIMEOUT_S`` for all of its operations together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymongo
from pymongo.asynchronous.database import AsyncDatabase

OPERATION_TIMEOUT_MS = 2_000
"""Per operation, server selection included: the longest a request waits for one of its
store operations (the README's "503 after about 2 s")."""

BULK_TIMEOUT_S = 60.0
"""A bulk transaction or purge round, as a whole."""

ABORT_TIMEOUT_S = 0.5
"""Aborting a failed transaction: a courtesy to the server, which ends an abandoned
transaction itself (``transactionLifetimeLimitSeconds``); with the server gone it only
adds to the wait of a request that fails anyway."""


@asynccontextmanager
async def bulk(db: AsyncDatabase[Any]) -> AsyncIterator[None]:
    """A block of bulk work: ``BULK_TIMEOUT_S`` for all its operations together, instead
    of ``OPERATION_TIMEOUT_MS`` each.

    A ping first, under the operation timeout: within a block's deadline PyMongo waits
    for a server to select as long as the deadline allows, so without it a server that
    is gone would hold the block for ``BULK_TIMEOUT_S`` rather than fail it at once.
    """
    await db.command("ping")
    with pymongo.timeout(BULK_TIMEOUT_S):
        yield
