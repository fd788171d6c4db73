"""The SQLite writer's thread: runs blocking calls in order, answers on the event loop.

What ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` did, without its
machinery: a ``concurrent.futures.Future`` with its condition variable, a work item, the
pool's thread accounting and the chaining of two futures, on every ``COMMIT``. Here a call
is a tuple on a ``SimpleQueue`` and an asyncio future the thread settles through
``call_soon_threadsafe`` (measured in ``docs/PERFORMANCE.md``, issue 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class WriterThread:
    def __init__(self, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` on the thread, after every call queued before it."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._calls.put((fn, args, future))
        return future

    def stop(self) -> None:
        """End the thread once the calls queued have run, and wait for it."""
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, args, future = call
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting task, as an executor does
                self._answer(_fail, future, exc)
            else:
                self._answer(_succeed, future, result)

    def _answer(self, settle: Callable[[asyncio.Future[Any], Any], None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: no one is left to answer
            self._loop.call_soon_threadsafe(settle, *args)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
