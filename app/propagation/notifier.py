"""``EventNotifier``: readers of a tenant's events wait for new ones without polling the store.

The store tells, without a query, when a tenant's events may have moved
(``Store.events_stamp``: shared memory on SQLite, a change stream on MongoDB). A reader
takes the stamp, reads the store, and when nothing is new waits here until the stamp
differs from the one it took, then reads again:

    s = notifier.stamp(tenant_id)
    events = await store.list_events(...)
    if not events:
        await notifier.wait(tenant_id, s, timeout_s)

One ticker task per process, running only while someone waits, looks at the store's
``events_generation`` every ``TICK_S`` (memory only), and when it moved at the stamps
of the tenants waited for, and wakes their waiters; however many readers wait, the
store sees no query until there is something to read. Where the backend cannot tell
(None: no shared memory, a change stream not open) a wait ends within ``BLIND_S`` so
that the reader reads the store again.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from app.store.base import Store
from app.types import TenantId

TICK_S = 0.01
BLIND_S = 1.0

_notifiers: weakref.WeakSet[EventNotifier] = weakref.WeakSet()


def server_stopping() -> None:
    """The server is shutting down (called by the HTTP protocol): every waiter of this
    process is released and no one waits any more, so held requests and event streams
    end instead of holding the shutdown up."""
    for notifier in list(_notifiers):
        notifier.stop()


@dataclass(slots=True)
class _Waiters:
    """One tenant's waiters: each future with the stamp its reader took."""

    stamps: dict[asyncio.Future[bool], int | None] = field(default_factory=dict)


class EventNotifier:
    def __init__(self, store: Store, *, tick_s: float = TICK_S, blind_s: float = BLIND_S) -> None:
        self._store = store
        self._tick_s = tick_s
        self._blind_s = blind_s
        self._waiting: dict[TenantId, _Waiters] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._generation: int | None = None
        self._stopped = False
        _notifiers.add(self)

    @property
    def stopped(self) -> bool:
        """True once the process is shutting down: readers answer with what they have."""
        return self._stopped

    def stamp(self, tenant_id: TenantId) -> int | None:
        """The tenant's stamp now (no query); None when the backend cannot tell."""
        return self._store.events_stamp(tenant_id)

    async def wait(self, tenant_id: TenantId, stamp: int | None, timeout_s: float) -> bool:
        """True as soon as the tenant's stamp differs from ``stamp`` (or, the backend
        being unable to tell, after at most ``BLIND_S``: read again); False after
        ``timeout_s``, or at once when stopped."""
        if self._stopped:
            return False
        current = self._store.events_stamp(tenant_id)
        if current is not None and current != stamp:
            return True
        if timeout_s <= 0:
            return False
        blind = current is None
        limit = min(timeout_s, self._blind_s) if blind else timeout_s
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault(tenant_id, _Waiters())
        waiters.stamps[future] = current
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="event-notifier")
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            return blind and limit < timeout_s
        finally:
            waiters.stamps.pop(future, None)
            if not waiters.stamps and self._waiting.get(tenant_id) is waiters:
                del self._waiting[tenant_id]

    @property
    def waiting(self) -> int:
        """Readers waiting now (for tests and metrics)."""
        return sum(len(w.stamps) for w in self._waiting.values())

    def stop(self) -> None:
        """Release every waiter (False) and refuse to wait from now on."""
        self._stopped = True
        for waiters in list(self._waiting.values()):
            for future in list(waiters.stamps):
                if not future.done():
                    future.set_result(False)

    async def close(self) -> None:
        self.stop()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    async def _tick(self) -> None:
        try:
            while self._waiting and not self._stopped:
                await asyncio.sleep(self._tick_s)
                # The generation first: a tenant's stamp moves before it, so stamps read
                # after it are at least as new as what moved it.
                generation = self._store.events_generation()
                if generation is not None and generation == self._generation:
                    continue
                self._generation = generation
                self._wake()
        finally:
            # No await between the loop's test and this: a waiter that comes now finds
            # no ticker and starts one.
            if self._ticker is asyncio.current_task():
                self._ticker = None

    def _wake(self) -> None:
        for tenant_id, waiters in list(self._waiting.items()):
            current = self._store.events_stamp(tenant_id)
            for future, seen in list(waiters.stamps.items()):
                if current != seen and not future.done():
                    future.set_result(True)
