"""The group-commit writer: one thread, one connection, many callers per transaction.

Callers on the event loop queue jobs (functions of the connection). The thread takes
every pending job, runs them in one ``BEGIN IMMEDIATE … COMMIT`` (when a job fails, the
batch runs again with a savepoint per job, so that the failure rolls back only that
job), and settles each caller's future only after the commit: one fsync serves the
whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.errors import StoreUnavailable
from app.store.sqlite.errors import closed, translate

T = TypeVar("T")

MAX_BATCH = 512
LOCK_POLL_S = 0.0005


def begin_immediate(conn: sqlite3.Connection, timeout_s: float) -> None:
    """``BEGIN IMMEDIATE``, waiting up to ``timeout_s`` for another process's writer.

    SQLite's own busy handler sleeps longer and longer (up to 100 ms a time) while the
    lock is taken, so with two workers on one file a writer slept for up to a second
    and a half after the lock was free again. A write transaction here lasts a few
    milliseconds: poll often instead. The connection's own busy timeout is 0.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        wait_for_lock()


def wait_for_lock() -> None:
    time.sleep(LOCK_POLL_S)


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class _BatchLost(Exception):
    """The transaction was rolled back as a whole (SQLite does so on I/O errors)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("transaction lost")
        self.cause = cause


class _JobFailed(Exception):
    """A job raised while the batch ran without savepoints: run it again with them."""

    def __init__(self, cause: Exception) -> None:
        super().__init__("job failed")
        self.cause = cause


Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]
"""A caller's future, and the result or the error to settle it with."""


def _settle(loop: asyncio.AbstractEventLoop, outcomes: list[Outcome]) -> None:
    """Settle futures of one loop with a single wake-up of that loop."""

    def settle() -> None:
        for future, result, error in outcomes:
            if future.done():  # the caller was cancelled
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    # RuntimeError: the caller's loop is closed, nobody is waiting.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)


def _settle_jobs(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for job, result, error in outcomes:
        by_loop.setdefault(job.loop, []).append((job.future, result, error))
    for loop, settled in by_loop.items():
        _settle(loop, settled)


def _lost(cause: BaseException) -> BaseException:
    """A fresh error for each job of a batch whose transaction was rolled back."""
    error = translate(cause)
    if error is cause:
        error = StoreUnavailable("the SQLite transaction was rolled back")
        error.__cause__ = cause
    return error


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        name: str,
        lock_timeout_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self.lock_timeout_s = lock_timeout_s
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: stop
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.commits = 0
        """Transactions committed, for tests and metrics."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    async def start(self) -> None:
        """Start the thread; it opens (and migrates) the database, or this raises."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(loop, ready), name=self._name, daemon=True
        )
        self._thread.start()
        try:
            await ready
        except BaseException:
            await self.stop()
            raise

    def submit(self, run: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``run``; the future settles once its transaction has committed."""
        if not self.running:
            raise closed()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(run, loop, future))
        return future

    async def stop(self) -> None:
        """Run the jobs already queued, close the connection and end the thread."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._stopping = True
        self._queue.put(None)
        await asyncio.to_thread(thread.join)

    # --- on the writer thread ----------------------------------------------------------

    def _main(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            _settle(loop, [(ready, None, translate(exc))])
            return
        _settle(loop, [(ready, None, None)])
        try:
            stopped = False
            while not stopped:
                batch, stopped = self._take()
                try:
                    self._commit(conn, batch)
                except BaseException:
                    # A bug in the writer itself: fail this batch rather than leave its
                    # callers waiting; the thread ends and the store reports unavailable.
                    _settle_jobs(
                        [(job, None, StoreUnavailable("the SQLite writer failed")) for job in batch]
                    )
                    raise
        finally:
            conn.close()
            # Whatever was queued after the stop can no longer run.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    _settle_jobs([(item, None, closed())])

    def _take(self) -> tuple[list[_Job], bool]:
        """The pending jobs (at most ``MAX_BATCH``), and whether a stop came after them."""
        item = self._queue.get()
        batch: list[_Job] = []
        while item is not None:
            batch.append(item)
            if len(batch) >= MAX_BATCH:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run the batch in one transaction. Jobs run back to back; only when one fails
        is the batch run again with a savepoint per job, so that the failure rolls back
        that job alone (two statements per job saved on the common path)."""
        if not batch:
            return
        try:
            outcomes = self._transaction(conn, batch, isolated=False)
        except _JobFailed as failed:
            if len(batch) == 1:
                outcomes = [(batch[0], None, translate(failed.cause))]
            else:
                outcomes = self._transaction(conn, batch, isolated=True)
        _settle_jobs(outcomes)

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[_Job], *, isolated: bool
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            begin_immediate(conn, self.lock_timeout_s)
            run_one = self._run_isolated if isolated else self._run_plain
            outcomes = [run_one(conn, job) for job in batch]
            conn.execute("COMMIT")
            self.commits += 1
        except (sqlite3.Error, _BatchLost, _JobFailed) as exc:
            # A failing ROLLBACK means the connection is failing already: the jobs fail below.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, _JobFailed):
                raise
            cause = exc.cause if isinstance(exc, _BatchLost) else exc
            outcomes = [(job, None, _lost(cause)) for job in batch]
        return outcomes

    @staticmethod
    def _run_plain(conn: sqlite3.Connection, job: _Job) -> tuple[_Job, Any, BaseException | None]:
        try:
            return job, job.run(conn), None
        except Exception as exc:
            raise _JobFailed(exc) from exc

    @staticmethod
    def _run_isolated(
        conn: sqlite3.Connection, job: _Job
    ) -> tuple[_Job, Any, BaseException | None]:
        conn.execute("SAVEPOINT job")
        try:
            result = job.run(conn)
        except Exception as exc:
            if not conn.in_transaction:
                raise _BatchLost(exc) from exc
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return job, None, translate(exc)
        conn.execute("RELEASE job")
        return job, result, None
