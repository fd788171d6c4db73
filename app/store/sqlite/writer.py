"""The group-commit writer: one connection, many callers per transaction.

Callers queue jobs (functions of the connection). One task on the event loop takes every
pending job and runs them in one ``BEGIN IMMEDIATE … COMMIT``; each caller's future is
settled only after the commit, so one fsync serves the whole batch. When a job fails, the
batch runs again with a savepoint per job, so that the failure rolls back only that job.

Where the work runs is the point of this module. A revocation's statements take some
tens of microseconds; run on a thread of their own, they spent more than that again
handing the GIL back and forth with the event loop. So light jobs run on the event loop
itself, and only what blocks goes to the writer's thread: waiting for another process's
write lock, the ``COMMIT`` (the fsync), and heavy jobs (bulk registration, purges), which
run there whole so that they do not stall the loop. The connection is used by one side
at a time: the task awaits the thread before it touches the connection again.

A job may name what is to follow its commit (``committed``, e.g. announcing the events it
appended): the writer calls it as it settles the job, whether or not its caller still
waits. Done by the caller after its ``await`` instead, it would be skipped when the
caller is cancelled; done from a callback of a shielded future, it cost every revocation
two more callbacks and one more turn of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from app import metrics
from app.errors import StoreUnavailable
from app.store.sqlite.errors import closed, is_busy, translate
from app.store.sqlite.writer_thread import WriterThread

T = TypeVar("T")

log = structlog.get_logger("revocation.store")

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
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        wait_for_lock()


def wait_for_lock() -> None:
    time.sleep(LOCK_POLL_S)


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    heavy: bool
    committed: Callable[[Any], None] | None = None


Outcome = tuple[_Job, Any, BaseException | None]
"""A job, and the result or the error to settle its caller's future with."""


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


def _lost(cause: BaseException) -> BaseException:
    """A fresh error for each job of a batch whose transaction was rolled back."""
    error = translate(cause)
    if error is cause:
        error = StoreUnavailable("the SQLite transaction was rolled back")
        error.__cause__ = cause
    return error


def _settle(outcomes: list[Outcome]) -> None:
    for job, result, error in outcomes:
        if error is None and job.committed is not None:
            try:
                job.committed(result)
            except Exception:  # the commit stands; the caller gets its result
                log.exception("sqlite_after_commit_failed")
        if job.future.done():  # the caller was cancelled
            continue
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


def _run_plain(conn: sqlite3.Connection, job: _Job) -> Outcome:
    try:
        return job, job.run(conn), None
    except Exception as exc:
        raise _JobFailed(exc) from exc


def _run_isolated(conn: sqlite3.Connection, job: _Job) -> Outcome:
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


def _rollback(conn: sqlite3.Connection) -> None:
    # A failing ROLLBACK means the connection is failing already: the jobs fail anyway.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        name: str,
        lock_timeout_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self._name = name
        self.lock_timeout_s = lock_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._thread: WriterThread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.commits = 0
        """Transactions committed, for tests and metrics."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    async def start(self) -> None:
        """Open (and migrate) the database on the writer's thread, or raise."""
        self._loop = asyncio.get_running_loop()
        self._thread = WriterThread(self._name, self._loop)
        try:
            self._conn = await self._in_thread(self._connect)
        except BaseException as exc:
            self._thread.stop()
            self._thread = None
            error = translate(exc)
            if error is exc:
                raise
            raise error from exc
        self._task = asyncio.create_task(self._serve(), name=self._name)

    def submit(
        self,
        run: Callable[[sqlite3.Connection], T],
        *,
        heavy: bool = False,
        committed: Callable[[T], None] | None = None,
    ) -> asyncio.Future[T]:
        """Queue ``run``; the future settles once its transaction has committed.

        ``heavy``: the job may take long (thousands of rows) and runs on the writer's
        thread, in a transaction of its own, instead of on the event loop.
        ``committed``: called on the event loop with ``run``'s result once committed,
        just before the future settles, even if the caller was cancelled meanwhile; it
        must not block (the writer waits for it).
        """
        if not self.running:
            raise closed()
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise RuntimeError("the SQLite writer serves the event loop that opened it")
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Job(run, future, heavy, committed))
        self._wakeup.set()
        return future

    async def stop(self) -> None:
        """Run the jobs already queued, close the connection and end the thread."""
        task = self._task
        if task is None or self._stopping:
            return
        self._stopping = True
        self._wakeup.set()
        await asyncio.wait([task])

    # --- the serving task ---------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None and self._thread is not None
        return await self._thread.call(fn, *args)

    async def _serve(self) -> None:
        assert self._conn is not None and self._thread is not None
        conn = self._conn
        try:
            while self._pending or not self._stopping:
                if not self._pending:
                    await self._wakeup.wait()
                    self._wakeup.clear()
                    continue
                batch = self._take()
                metrics.sqlite_write_batch(len(batch))
                try:
                    if batch[0].heavy:
                        outcomes = await self._in_thread(self._transaction, conn, batch)
                    else:
                        outcomes = await self._light(conn, batch)
                except BaseException:
                    # A bug in the writer itself: fail this batch rather than leave its
                    # callers waiting; the store then reports unavailable.
                    _settle(
                        [(job, None, StoreUnavailable("the SQLite writer failed")) for job in batch]
                    )
                    raise
                _settle(outcomes)
        finally:
            self._stopping = True
            while self._pending:
                _settle([(self._pending.popleft(), None, closed())])
            with contextlib.suppress(Exception):
                await self._in_thread(conn.close)
            self._thread.stop()  # the thread is idle: this only joins it

    def _take(self) -> list[_Job]:
        """A heavy job alone, or the light jobs at the head of the queue."""
        first = self._pending.popleft()
        batch = [first]
        if first.heavy:
            return batch
        while self._pending and not self._pending[0].heavy and len(batch) < MAX_BATCH:
            batch.append(self._pending.popleft())
        return batch

    async def _light(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """Begin (on the thread if the lock is taken), run the jobs here, commit on the
        thread."""
        try:
            await self._begin(conn)
            try:
                outcomes = [_run_plain(conn, job) for job in batch]
            except _JobFailed as failed:
                _rollback(conn)
                if len(batch) == 1:
                    return [(batch[0], None, translate(failed.cause))]
                await self._begin(conn)
                outcomes = [_run_isolated(conn, job) for job in batch]
            await self._in_thread(conn.execute, "COMMIT")
            self.commits += 1
            return outcomes
        except (sqlite3.Error, _BatchLost) as exc:
            _rollback(conn)
            cause = exc.cause if isinstance(exc, _BatchLost) else exc
            return [(job, None, _lost(cause)) for job in batch]

    async def _begin(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            await self._in_thread(begin_immediate, conn, self.lock_timeout_s)

    def _transaction(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Outcome]:
        """A whole transaction, on the writer's thread."""
        try:
            begin_immediate(conn, self.lock_timeout_s)
            try:
                outcomes = [_run_plain(conn, job) for job in batch]
            except _JobFailed as failed:
                _rollback(conn)
                return [(job, None, translate(failed.cause)) for job in batch]
            conn.execute("COMMIT")
            self.commits += 1
            return outcomes
        except sqlite3.Error as exc:
            _rollback(conn)
            return [(job, None, _lost(exc)) for job in batch]
