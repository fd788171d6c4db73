"""The process's push delivery: one task per push receiver of every tenant (``push``).

Run by the ``deliver`` process (``app.delivery_process``; ``serve`` starts one), by every
HTTP worker with ``serve --delivery workers``, and by tests (``start``/``stop``). It follows
the receivers as they change: when the configuration version moves (a receiver written
or deleted, by any process), it lists them again, starts a task for a new receiver,
restarts the task of a changed one (a ``PUT`` resumes a paused receiver) and stops the
task of a deleted one. Every process runs one; leases decide which one delivers to each
receiver. Nothing here is on a request's path: a revocation only appends its event.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import structlog

from app.models import Receiver
from app.propagation.push import PushSettings, PushWorker
from app.services import Services
from app.types import TenantId

log = structlog.get_logger("revocation.delivery")

MAX_IN_FLIGHT = 64
"""POSTs to receivers at once, across the process."""
CONFIG_CHECK_S = 1.0
"""How often the configuration version is compared (a number in memory on MongoDB, a
file's time on SQLite: no query)."""

Key = tuple[TenantId, str]


class Deliverer:
    def __init__(
        self,
        services: Services,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        lease_s: int = 30,
        timeout_s: float = 5.0,
        owner: str | None = None,
    ) -> None:
        self.services = services
        self.settings = PushSettings(
            services,
            owner or secrets.token_hex(8),
            asyncio.Semaphore(max_in_flight),
            lease_s=lease_s,
            timeout_s=timeout_s,
        )
        self._workers: dict[Key, tuple[PushWorker, asyncio.Task[None]]] = {}
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def owner(self) -> str:
        return self.settings.owner

    async def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._follow(), name="deliverer")

    async def stop(self) -> None:
        """Stop every task; each records what it delivered and gives up its lease."""
        tasks = [task for _, task in self._workers.values()]
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._supervisor = None

    async def _follow(self) -> None:
        directory = self.services.directory
        seen: object = object()
        while True:
            try:
                await directory.refresh()
                if directory.version != seen:
                    version = directory.version
                    self._sync(await self.services.store.list_receivers())
                    seen = version
            except Exception:
                log.exception("receivers_reload_failed")
            await asyncio.sleep(CONFIG_CHECK_S)

    def _sync(self, receivers: list[Receiver]) -> None:
        wanted = {(r.tenant_id, r.receiver_id): r for r in receivers if r.delivery == "push"}
        replaced: dict[Key, asyncio.Task[None]] = {}
        for key, (worker, task) in list(self._workers.items()):
            if wanted.get(key) != worker.receiver:
                # What it holds in memory predates the change (a resume clears the
                # failures): its SETs since the last write are sent again instead.
                worker.record_on_exit = False
                task.cancel()
                replaced[key] = task
                del self._workers[key]
        for key, receiver in wanted.items():
            if key not in self._workers:
                worker = PushWorker(self.settings, receiver)
                run = _after(replaced.get(key), worker)
                task = asyncio.create_task(run, name=f"push:{key[0]}:{key[1]}")
                self._workers[key] = (worker, task)


async def _after(previous: asyncio.Task[None] | None, worker: PushWorker) -> None:
    """Run ``worker`` once the task it replaces has ended (one task per receiver)."""
    if previous is not None:
        await asyncio.wait([previous])
    await worker.run()
