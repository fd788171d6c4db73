"""Multi-document transactions, retried as the MongoDB transactions specification says,
but within our own time window.

``AsyncClientSession.with_transaction`` would do the retrying, but it keeps at it for
two minutes, and bounding it with ``pymongo.timeout()`` makes every server selection
inside wait for the whole remaining budget (PyMongo's CSOT ignores
``serverSelectionTimeoutMS``). Either way a request would hang long after the server
is known to be gone. Here a transaction whose server cannot be selected fails at once
(``serverSelectionTimeoutMS``), and only what is worth retrying is retried: write
conflicts and other ``TransientTransactionError``s, and commits whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, ReadPreference
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from app import metrics

T = TypeVar("T")

MAJORITY = WriteConcern("majority", j=True)
"""Acknowledged once on a majority and in its journal (MongoDB's default for majority)."""
SNAPSHOT = ReadConcern("snapshot")

BACKOFF_INITIAL_S = 0.005
BACKOFF_MAX_S = 0.5
ABORT_TIMEOUT_S = 1.0
MAX_TIME_EXPIRED = 50


def _transient(exc: BaseException) -> bool:
    return (
        isinstance(exc, PyMongoError)
        and exc.has_error_label("TransientTransactionError")
        and not isinstance(exc, ServerSelectionTimeoutError)
    )


def _commit_unknown(exc: PyMongoError) -> bool:
    return (
        exc.has_error_label("UnknownTransactionCommitResult")
        and not isinstance(exc, ServerSelectionTimeoutError)
        and not (isinstance(exc, OperationFailure) and exc.code == MAX_TIME_EXPIRED)
    )


async def _backoff(attempt: int) -> None:
    jitter = random.random()  # noqa: S311 - spreading retries, not a secret
    await asyncio.sleep(jitter * min(BACKOFF_INITIAL_S * 1.5**attempt, BACKOFF_MAX_S))


async def _abort(session: AsyncClientSession) -> None:
    """Abort, briefly: with the server gone the abort cannot reach it either (and the
    server ends the transaction itself after its lifetime limit)."""
    if session.in_transaction:
        with pymongo.timeout(ABORT_TIMEOUT_S):
            await session.abort_transaction()  # errors are ignored by the driver


async def run_in_transaction(
    client: AsyncMongoClient[Any],
    callback: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    retry_for_s: float,
) -> T:
    """Run ``callback`` in a transaction (snapshot reads, majority journaled commit) and
    commit it; retry transient failures until ``retry_for_s`` has passed."""
    deadline = time.monotonic() + retry_for_s
    attempt = 0
    async with client.start_session() as session:
        while True:
            attempt += 1
            await session.start_transaction(
                read_concern=SNAPSHOT,
                write_concern=MAJORITY,
                read_preference=ReadPreference.PRIMARY,
            )
            try:
                result = await callback(session)
            except BaseException as exc:
                await _abort(session)
                if _transient(exc) and time.monotonic() < deadline:
                    metrics.mongodb_transaction_retry("transient")
                    await _backoff(attempt)
                    continue
                raise
            while True:
                try:
                    await session.commit_transaction()
                    return result
                except PyMongoError as exc:
                    if time.monotonic() >= deadline:
                        raise
                    if _commit_unknown(exc):
                        metrics.mongodb_transaction_retry("commit_unknown")
                        continue  # the driver makes the retried commit idempotent
                    if not _transient(exc):
                        raise
                metrics.mongodb_transaction_retry("commit_transient")
                await _backoff(attempt)
                break  # a transient commit failure: the whole transaction again
