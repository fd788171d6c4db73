"""One change stream followed by a background task, reopened after every failure.

The configuration watcher, the events watcher and the failure stamps each follow a
stream; they differ in what they watch, what a change moves, what they do when a stream
opens or is lost, and whether a new stream resumes where the old one stopped (only the
configuration watcher's does: the others start from now and make their readers read the
store once instead). The loop is the same: open, hand every change on, and on an error
log the first failure of an outage, close the stream and retry with a growing delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

Document = dict[str, Any]

MAX_AWAIT_MS = 500
RETRY_MIN_S = 0.05
RETRY_MAX_S = 0.5
STOP_TIMEOUT_S = 5.0
UNRESUMABLE = frozenset({260, 280, 286})
"""InvalidResumeToken, ChangeStreamFatalError, ChangeStreamHistoryLost: start from now."""


def _nothing() -> None:
    return None


class ChangeStreamFollower:
    """Follows ``source.watch(pipeline, **watch_options)``, calling ``on_change`` with
    every change, ``on_open`` each time a stream opens and ``on_lost`` each time one ends
    or fails to open. ``name`` names the log lines (``<name> change stream …``, on the
    caller's ``log``) and the task (``mongodb-<name>-watcher``)."""

    def __init__(
        self,
        name: str,
        source: AsyncDatabase[Document] | AsyncCollection[Document],
        pipeline: list[Document],
        on_change: Callable[[Document], None],
        log: logging.Logger,
        *,
        resume: bool = False,
        on_open: Callable[[], None] = _nothing,
        on_lost: Callable[[], None] = _nothing,
        watch_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._source = source
        self._pipeline = pipeline
        self._on_change = on_change
        self._log = log
        self._resume = resume
        self._on_open = on_open
        self._on_lost = on_lost
        self._watch_options = dict(watch_options or {})
        self._resume_token: Mapping[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False
        self.connected = False
        """True while a stream is open (False during an outage)."""

    async def start(self) -> None:
        """Open the stream now, so that no change after ``start()`` returns is missed."""
        stream = await self._open()
        self._task = asyncio.create_task(self._run(stream), name=self._task_name)

    def start_soon(self) -> None:
        """Open the stream in the background, unless started or stopped already."""
        if self._task is None and not self._stopping:
            self._task = asyncio.create_task(self._run(None), name=self._task_name)

    async def stop(self) -> None:
        """Cancel the task and wait for it (bounded).

        The flag matters as much as the cancellation: when a change stream is cancelled
        mid-``getMore``, PyMongo closes it, and an error from that close replaces the
        ``CancelledError`` (PyMongo 4.x), so the cancellation can arrive as a PyMongo
        error that the loop would otherwise take for a network failure and retry.
        """
        task, self._task = self._task, None
        self._stopping = True
        self.connected = False
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
        if not done:
            self._log.warning(
                "%s change stream watcher did not stop within %ss", self._name, STOP_TIMEOUT_S
            )
        elif not task.cancelled() and task.exception() is not None:
            self._log.warning("%s change stream watcher failed: %r", self._name, task.exception())

    @property
    def _task_name(self) -> str:
        return f"mongodb-{self._name.replace(' ', '-')}-watcher"

    async def _open(self) -> AsyncChangeStream[Document]:
        stream = await self._source.watch(
            self._pipeline,
            resume_after=self._resume_token,
            max_await_time_ms=MAX_AWAIT_MS,
            **self._watch_options,
        )
        self._on_open()
        self.connected = True
        return stream

    async def _run(self, stream: AsyncChangeStream[Document] | None) -> None:
        delay = RETRY_MIN_S
        while not self._stopping:
            try:
                if stream is None:
                    stream = await self._open()
                    if self._failing:
                        self._log.info("%s change stream resumed", self._name)
                self._failing = False
                delay = RETRY_MIN_S
                await self._follow(stream)
            except OperationFailure as exc:
                if exc.code in UNRESUMABLE:
                    self._resume_token = None
                self._failed(exc)
            except PyMongoError as exc:
                self._failed(exc)
            except Exception:
                self._log.exception("%s change stream watcher error", self._name)
            finally:
                self.connected = False
                self._on_lost()
                if stream is not None:
                    with contextlib.suppress(PyMongoError):
                        await stream.close()
                    stream = None
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _failed(self, exc: PyMongoError) -> None:
        """Log the first failure of an outage, not every retry."""
        if not self._failing:
            self._log.warning("%s change stream failed, retrying: %s", self._name, exc)
        self._failing = True

    async def _follow(self, stream: AsyncChangeStream[Document]) -> None:
        """Hand on each change until the stream ends (invalidated) or fails."""
        while stream.alive and not self._stopping:
            change = await stream.try_next()
            if self._resume:
                self._resume_token = stream.resume_token
            if change is not None:
                self._on_change(change)
        if not stream.alive:
            self._resume_token = None  # invalidated (database dropped): start afresh
