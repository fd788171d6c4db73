"""Workers per tenant: started on demand, shared by the tenant's concurrent calls, capped
per tenant and in all, idle ones stopped.

A worker only ever serves the tenant it was started for, and takes up to
``max_in_flight`` calls at once (``calls.py``). A call goes to the tenant's worker with
the fewest in flight; another worker is started (up to ``workers_per_tenant``) only when
every one is full. When the process-wide cap is reached, the least recently used idle
worker of another tenant (no call in flight, and not one just started for calls about
to take it) is stopped to make room; if there is none the call waits, at most until its
own deadline, for any call to finish or worker to stop. Waiting for a worker being
started is not charged to a call, as starting one is not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.plugins.sandbox.limits import SandboxLimits
from app.plugins.sandbox.model import PluginFailure
from app.plugins.sandbox.process import WorkerProcess

Starter = Callable[[str], Awaitable[WorkerProcess]]


@dataclass(slots=True)
class TenantWorkers:
    live: list[WorkerProcess] = field(default_factory=list)
    starting: asyncio.Task[WorkerProcess] | None = None

    @property
    def size(self) -> int:
        return len(self.live) + (self.starting is not None)


class Pools:
    def __init__(self, limits: SandboxLimits, start: Starter) -> None:
        self.limits = limits
        self._start = start
        self._tenants: dict[str, TenantWorkers] = {}
        self._draining: set[WorkerProcess] = set()
        """No longer usable, calls still in flight: stopped when the last one ends."""
        self._waiters: set[asyncio.Future[None]] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def total(self) -> int:
        return sum(t.size for t in self._tenants.values()) + len(self._draining)

    def pids(self, tenant_id: str) -> list[int]:
        workers = self._tenants.get(tenant_id)
        return [] if workers is None else sorted(w.pid for w in workers.live if w.usable)

    def take(self, tenant_id: str, deadline: float) -> WorkerProcess | None:
        """A worker of the tenant that takes one more call now, if there is one."""
        workers = self._tenants.get(tenant_id)
        if self.closed or workers is None:
            return None
        worker = self._least_loaded(workers, deadline)
        if worker is not None:
            worker.in_flight += 1
            worker.fresh = False
        return worker

    async def acquire(self, tenant_id: str, deadline: float) -> tuple[WorkerProcess, float]:
        """A worker of the tenant that takes one more call, and the seconds spent waiting
        for one to start (not charged to the call); ``TimeoutError`` at ``deadline`` (the
        loop's clock)."""
        loop = asyncio.get_running_loop()
        waited = 0.0
        while True:
            if self.closed:
                raise RuntimeError("the sandbox is closed")
            worker = self.take(tenant_id, deadline + waited)
            if worker is not None:
                return worker, waited
            # After take(): it may have dropped the tenant's last (dead) worker and entry.
            workers = self._tenants.setdefault(tenant_id, TenantWorkers())
            if workers.starting is None and len(workers.live) < self.limits.workers_per_tenant:
                if self.total >= self.limits.max_workers:
                    self._evict_idle(besides=tenant_id)
                if self.total < self.limits.max_workers:
                    workers.starting = loop.create_task(self._start_for(tenant_id, workers))
            if workers.starting is not None:
                began = loop.time()
                await asyncio.shield(workers.starting)
                waited += loop.time() - began
            else:
                await self._wait(deadline + waited)

    def release(self, worker: WorkerProcess) -> None:
        worker.in_flight -= 1
        worker.last_used = asyncio.get_running_loop().time()
        if self.closed or not worker.usable:
            self._retire(worker)
        if self._waiters:
            self._wake()

    async def reap_idle(self) -> int:
        """Stops the workers idle for ``idle_s`` or more; how many."""
        now = asyncio.get_running_loop().time()
        stale = [
            worker
            for workers in self._tenants.values()
            for worker in workers.live
            if worker.in_flight == 0
            and (now - worker.last_used >= self.limits.idle_s or not worker.usable)
        ]
        for worker in stale:
            self._retire(worker)
        self._wake()
        await self.wait_stopped()
        return len(stale)

    async def close(self) -> None:
        self.closed = True
        closed = PluginFailure("crashed", "the sandbox was closed: worker stopped")
        starting = [t.starting for t in self._tenants.values() if t.starting is not None]
        for worker in [*self._draining, *(w for t in self._tenants.values() for w in t.live)]:
            self._stop_later(worker, closed)
        self._tenants.clear()
        self._draining.clear()
        self._wake()
        await asyncio.gather(*starting, return_exceptions=True)
        await self.wait_stopped()

    async def wait_stopped(self) -> None:
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # ---------------------------------------------------------------------------------

    def _least_loaded(self, workers: TenantWorkers, deadline: float) -> WorkerProcess | None:
        best: WorkerProcess | None = None
        gone: list[WorkerProcess] = []
        for worker in workers.live:
            if not worker.usable:
                gone.append(worker)
            elif (
                worker.in_flight < self.limits.max_in_flight
                and worker.accepts(deadline)
                and (best is None or worker.in_flight < best.in_flight)
            ):
                best = worker
        for worker in gone:
            self._retire(worker)
        return best

    async def _start_for(self, tenant_id: str, workers: TenantWorkers) -> WorkerProcess:
        try:
            worker = await self._start(tenant_id)
        except BaseException:
            workers.starting = None
            self._forget_if_empty(tenant_id)
            self._wake()
            raise
        workers.starting = None
        if self.closed:
            self._stop_later(worker)
        else:
            workers.live.append(worker)
        self._wake()
        return worker

    def _retire(self, worker: WorkerProcess) -> None:
        """Out of its tenant's workers; stopped now, or when its last call ends."""
        workers = self._tenants.get(worker.tenant_id)
        if workers is not None and worker in workers.live:
            workers.live.remove(worker)
            self._forget_if_empty(worker.tenant_id)
        if worker.in_flight > 0:
            self._draining.add(worker)
        else:
            self._draining.discard(worker)
            self._stop_later(worker)

    def _evict_idle(self, besides: str) -> None:
        idle = [
            w
            for tenant_id, workers in self._tenants.items()
            if tenant_id != besides
            for w in workers.live
            if w.in_flight == 0 and not w.fresh
        ]
        if idle:
            self._retire(min(idle, key=lambda w: w.last_used))

    def _stop_later(self, worker: WorkerProcess, failure: PluginFailure | None = None) -> None:
        if worker.stop_requested:
            return
        worker.stop_requested = True
        task = asyncio.get_running_loop().create_task(worker.stop(failure))
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
