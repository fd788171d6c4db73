"""The sandbox: calls one hook of a tenant's uploaded plugin in one of its workers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from app.plugins.sandbox.launch import launch
from app.plugins.sandbox.limits import SandboxLimits
from app.plugins.sandbox.model import PluginCode, PluginFailure, SandboxResult
from app.plugins.sandbox.pool import Pools
from app.plugins.sandbox.process import WorkerProcess, WorkerStartError

REAP_EVERY_S = (0.05, 30.0)
"""The idle reaper wakes every ``idle_s / 2``, within these bounds."""


class Sandbox:
    """Runs tenants' plugin code in per-tenant worker processes, never in this one."""

    def __init__(self, limits: SandboxLimits = SandboxLimits()) -> None:  # noqa: B008 - frozen
        self.limits = limits
        self._pools = Pools(limits, self._start)
        self._reaper: asyncio.Task[None] | None = None
        self._layers: dict[str, bool] | None = None

    async def call(
        self,
        tenant_id: str,
        plugin: PluginCode,
        hook: str,
        args: dict[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> SandboxResult:
        """The hook's value, or ``PluginFailure`` for anything the plugin did wrong."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        timeout = self.limits.call_timeout_s if timeout_s is None else timeout_s
        if self._reaper is None and not self._pools.closed:
            self._reaper = loop.create_task(self._reap_forever())
        worker, starting_s = self._pools.take(tenant_id, began + timeout), 0.0
        try:
            if worker is None:
                worker, starting_s = await self._pools.acquire(tenant_id, began + timeout)
        except TimeoutError:
            raise PluginFailure("timeout", f"no free worker within {timeout:g} s") from None
        except WorkerStartError as exc:
            raise PluginFailure("crashed", f"no worker started: {exc}") from None
        try:
            value, output = await worker.call(plugin, hook, args, began + timeout + starting_s)
        finally:
            self._pools.release(worker)
        return SandboxResult(value, output, loop.time() - began)

    async def layers(self) -> dict[str, bool]:
        """Each confinement layer → whether it works here, as a worker reports it (one is
        started for this if none has been yet)."""
        if self._layers is None:
            try:
                worker = await self._start("")
            except WorkerStartError as exc:
                raise PluginFailure("crashed", f"no worker started: {exc}") from None
            await worker.stop()
        assert self._layers is not None
        return dict(self._layers)

    def worker_pids(self, tenant_id: str) -> list[int]:
        return self._pools.pids(tenant_id)

    async def reap_idle(self) -> int:
        """Stops the workers idle for ``idle_s`` or more now; how many."""
        return await self._pools.reap_idle()

    async def close(self) -> None:
        """Stops every worker (SIGKILL after a short grace); idempotent."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._pools.close()

    async def _start(self, tenant_id: str) -> WorkerProcess:
        worker = await WorkerProcess.start(tenant_id, self.limits, await launch())
        if self._layers is None:
            self._layers = {
                "unshare": bool((await launch()).prefix),
                **worker.layers,
            }
        return worker

    async def _reap_forever(self) -> None:
        low, high = REAP_EVERY_S
        while True:
            await asyncio.sleep(min(max(self.limits.idle_s / 2, low), high))
            await self._pools.reap_idle()
