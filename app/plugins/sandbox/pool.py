"""Workers per tenant: started on demand, capped per tenant and in all, idle ones stopped.

A worker only ever serves the tenant it was started for. When the process-wide cap is
reached, the least recently used idle worker of another tenant is stopped to make room;
if there is none the call waits, at most until its own deadline, for any worker to be
released or stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.plugins.sandbox.limits import SandboxLimits
from app.plugins.sandbox.process import WorkerProcess

Starter = Callable[[str], Awaitable[WorkerProcess]]


@dataclass(slots=True)
class TenantWorkers:
    idle: list[WorkerProcess] = field(default_factory=list)
    """Most recently used last: it is taken first, its module cache being the warmest."""
    busy: set[WorkerProcess] = field(default_factory=set)
    starting: int = 0

    @property
    def size(self) -> int:
        return len(self.idle) + len(self.busy) + self.starting


class Pools:
    def __init__(self, limits: SandboxLimits, start: Starter) -> None:
        self.limits = limits
        self._start = start
        self._tenants: dict[str, TenantWorkers] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def total(self) -> int:
        return sum(t.size for t in self._tenants.values())

    def pids(self, tenant_id: str) -> list[int]:
        workers = self._tenants.get(tenant_id)
        if workers is None:
            return []
        return sorted(w.pid for w in (*workers.idle, *workers.busy))

    async def acquire(self, tenant_id: str, deadline: float) -> tuple[WorkerProcess, float]:
        """A worker of the tenant, marked busy, and the seconds spent starting it (not
        charged to the call); ``TimeoutError`` at ``deadline`` (the loop's clock)."""
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise RuntimeError("the sandbox is closed")
            workers = self._tenants.setdefault(tenant_id, TenantWorkers())
            while workers.idle:
                worker = workers.idle.pop()
                if worker.usable and worker.proc.returncode is None:
                    workers.busy.add(worker)
                    return worker, 0.0
                self._stop_later(worker)
            if workers.size < self.limits.workers_per_tenant:
                if self.total >= self.limits.max_workers:
                    self._evict_idle(besides=tenant_id)
                if self.total < self.limits.max_workers:
                    began = loop.time()
                    workers.starting += 1
                    try:
                        worker = await self._start(tenant_id)
                    except BaseException:
                        workers.starting -= 1
                        self._forget_if_empty(tenant_id)
                        self._wake()
                        raise
                    workers.starting -= 1
                    workers.busy.add(worker)
                    return worker, loop.time() - began
            await self._wait(deadline)

    def release(self, worker: WorkerProcess) -> None:
        workers = self._tenants.get(worker.tenant_id)
        if workers is not None:
            workers.busy.discard(worker)
        if self.closed or workers is None or not worker.usable:
            self._stop_later(worker)
        else:
            workers.idle.append(worker)
        self._forget_if_empty(worker.tenant_id)
        self._wake()

    async def reap_idle(self) -> int:
        """Stops the workers idle for ``idle_s`` or more; how many."""
        now = asyncio.get_running_loop().time()
        stale: list[WorkerProcess] = []
        for tenant_id, workers in list(self._tenants.items()):
            keep = [w for w in workers.idle if now - w.last_used < self.limits.idle_s]
            stale += [w for w in workers.idle if w not in keep]
            workers.idle = keep
            self._forget_if_empty(tenant_id)
        for worker in stale:
            self._stop_later(worker)
        self._wake()
        await self.wait_stopped()
        return len(stale)

    async def close(self) -> None:
        self.closed = True
        for workers in self._tenants.values():
            for worker in (*workers.idle, *workers.busy):
                self._stop_later(worker)
            workers.idle.clear()
        self._wake()
        await self.wait_stopped()

    async def wait_stopped(self) -> None:
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # ---------------------------------------------------------------------------------

    def _evict_idle(self, besides: str) -> None:
        candidates = [
            (w.last_used, tenant_id, w)
            for tenant_id, workers in self._tenants.items()
            if tenant_id != besides
            for w in workers.idle
        ]
        if not candidates:
            return
        _, tenant_id, worker = min(candidates, key=lambda c: c[0])
        self._tenants[tenant_id].idle.remove(worker)
        self._forget_if_empty(tenant_id)
        self._stop_later(worker)

    def _stop_later(self, worker: WorkerProcess) -> None:
        if worker.stop_requested:
            return
        worker.stop_requested = True
        task = asyncio.get_running_loop().create_task(worker.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _forget_if_empty(self, tenant_id: str) -> None:
        workers = self._tenants.get(tenant_id)
        if workers is not None and workers.size == 0:
            del self._tenants[tenant_id]

    async def _wait(self, deadline: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        finally:
            self._waiters.discard(waiter)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
