"""Multi-document transactions, retried as the MongoDB transactions specification says,
but within our own time window.

``AsyncClientSession.with_transaction`` would do the retrying, but it keeps at it for
two minutes, long after the server is known to be gone. Here each operation has the
client's ``timeoutMS`` (``deadlines``), and only what is worth retrying is retried:
write conflicts and other ``TransientTransactionError``s, and commits whose outcome is
unknown. A timeout is not retried: a server that did not answer within the operation
timeout is gone or stalled, and the request answers ``503`` at once instead of waiting
once more for each retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient, ReadPreference
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from app import metrics
from app.store.mongodb.abandoned_sessions import AbandonedSessions, cut_off
from app.store.mongodb.deadlines import ABORT_TIMEOUT_S

T = TypeVar("T")

MAJORITY = WriteConcern("majority", j=True)
"""Acknowledged once on a majority and in its journal (MongoDB's default for majority)."""
SNAPSHOT = ReadConcern("snapshot")

BACKOFF_INITIAL_S = 0.005
BACKOFF_MAX_S = 0.5
MAX_TIME_EXPIRED = 50


def _transient(exc: BaseException) -> bool:
    return (
        isinstance(exc, PyMongoError)
        and exc.has_error_label("TransientTransactionError")
        and not exc.timeout
    )


def _commit_unknown(exc: PyMongoError) -> bool:
    return (
        exc.has_error_label("UnknownTransactionCommitResult")
        and not exc.timeout
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
    abandoned: AbandonedSessions | None = None,
    commit_timeout_s: float | None = None,
) -> T:
    """Run ``callback`` in a transaction (snapshot reads, majority journaled commit) and
    commit it; retry transient failures until ``retry_for_s`` has passed.

    The session of a transaction given up after a timeout or a lost connection goes to
    ``abandoned`` (the client's; None: this call's own), whose sessions are killed
    before a transaction that met a write conflict tries again.

    ``commit_timeout_s`` bounds the commit as a whole, the driver's own retry of it and
    ours included (None: each has the operation timeout, or the caller's deadline): a
    commit cut off by the server's death is sent again, and without the bound each
    sending would wait its full timeout for a server that is gone.
    """
    deadline = time.monotonic() + retry_for_s
    attempt = 0
    abandoned = abandoned if abandoned is not None else AbandonedSessions()
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
                    await _before_retry(client, exc, abandoned, attempt)
                    continue  # on this session: its next transaction ends the last one
                if cut_off(exc):
                    abandoned.add(session)
                raise
            commit_bound = (
                contextlib.nullcontext()
                if commit_timeout_s is None
                else pymongo.timeout(commit_timeout_s)
            )
            try:
                with commit_bound:
                    failed = await _commit(session, deadline)
            except PyMongoError as exc:
                if cut_off(exc):
                    abandoned.add(session)
                raise
            if failed is None:
                return result
            # A transient commit failure: the whole transaction again.
            metrics.mongodb_transaction_retry("commit_transient")
            await _before_retry(client, failed, abandoned, attempt)


async def _before_retry(
    client: AsyncMongoClient[Any],
    exc: BaseException,
    abandoned: AbandonedSessions,
    attempt: int,
) -> None:
    """A write conflict may be with one of our abandoned transactions, and says that the
    server answers: the time to kill them. (After a lost connection it does not answer.)"""
    if isinstance(exc, OperationFailure):
        await abandoned.kill(client)
    await _backoff(attempt)


async def _commit(session: AsyncClientSession, deadline: float) -> PyMongoError | None:
    """Commit: None once committed, or the transient error after which the whole
    transaction must run again. A commit whose outcome is unknown is sent again (the
    driver makes that idempotent)."""
    while True:
        try:
            await session.commit_transaction()
            return None
        except PyMongoError as exc:
            if time.monotonic() >= deadline:
                raise
            if _commit_unknown(exc):
                metrics.mongodb_transaction_retry("commit_unknown")
                continue
            if not _transient(exc):
                raise
            return exc
