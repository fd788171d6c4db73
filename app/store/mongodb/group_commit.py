"""Revocations of one tenant within this process are committed in batches.

Every revocation that appends events updates its tenant's event counter document, so two
transactions of a tenant in flight at once always meet in a write conflict: one is
aborted and retried, having done its work for nothing. Between processes that is how it
has to be; within one process a queue per tenant does better. While one batch is being
committed, the revocations that arrive queue up; the next batch takes all of them (up to
``max_batch``) into one transaction: one counter update, one commit and a few writes for
all of them, instead of one round of each per revocation. Tenants do not wait for each
other.

When the store turns out to be unreachable during a batch, everyone who was already
waiting fails at once instead of each waiting for its own server selection timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from app import metrics
from app.errors import StoreUnavailable
from app.models import RevocationOutcome, RevocationPlan
from app.store.mongodb.errors import is_unavailable
from app.types import TenantId

ApplyBatch = Callable[[TenantId, Sequence[RevocationPlan]], Awaitable[list[RevocationOutcome]]]


@dataclass(eq=False)
class _Waiting:
    plan: RevocationPlan
    outcome: asyncio.Future[RevocationOutcome]


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: list[_Waiting] = field(default_factory=list)
    users: int = 0


class GroupCommit:
    def __init__(self, apply: ApplyBatch, *, max_batch: int) -> None:
        """``apply`` commits a batch of one tenant's plans, one outcome per plan."""
        self._apply = apply
        self._max_batch = max_batch
        self._queues: dict[TenantId, _Queue] = {}
        self._running: set[asyncio.Task[list[RevocationOutcome]]] = set()

    async def submit(self, tenant_id: TenantId, plan: RevocationPlan) -> RevocationOutcome:
        """Apply ``plan`` in the next batch of its tenant; its outcome once committed."""
        queue = self._queues.setdefault(tenant_id, _Queue())
        mine = _Waiting(plan, asyncio.get_running_loop().create_future())
        queue.pending.append(mine)
        queue.users += 1
        try:
            async with queue.lock:
                if mine in queue.pending:  # not taken by an earlier batch
                    await self._run_batch(tenant_id, queue)
            return await mine.outcome
        finally:
            queue.users -= 1
            if not queue.users:
                del self._queues[tenant_id]

    async def _run_batch(self, tenant_id: TenantId, queue: _Queue) -> None:
        """Commit the queue's first plans. The batch runs in a task of its own, so that
        cancelling the request that started it leaves the others' outcomes be."""
        batch = queue.pending[: self._max_batch]
        del queue.pending[: self._max_batch]
        metrics.mongodb_group_commit(len(batch))
        task = asyncio.ensure_future(self._apply(tenant_id, [w.plan for w in batch]))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda done: _settle(batch, done, queue))
        await asyncio.wait([task])


def _settle(
    batch: list[_Waiting], done: asyncio.Task[list[RevocationOutcome]], queue: _Queue
) -> None:
    if done.cancelled():
        _fail(batch, StoreUnavailable("MongoDB revocation batch cancelled"))
        return
    exc = done.exception()
    if exc is None:
        for waiting, outcome in zip(batch, done.result(), strict=True):
            if not waiting.outcome.done():
                waiting.outcome.set_result(outcome)
        return
    _fail(batch, exc)
    if isinstance(exc, PyMongoError) and is_unavailable(exc):
        _fail(queue.pending, StoreUnavailable("MongoDB unavailable (while queued)"))
        queue.pending.clear()


def _fail(batch: list[_Waiting], exc: BaseException) -> None:
    for waiting in batch:
        if not waiting.outcome.done():
            waiting.outcome.set_exception(exc)
