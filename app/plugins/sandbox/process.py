"""One worker seen from the service: starting it, its calls (``calls.py``), stopping it.

Nothing a worker sends is trusted; whatever leaves its state unknown kills it (SIGKILL
of its process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from typing import Any

from app.plugins.sandbox import protocol
from app.plugins.sandbox.calls import Calls
from app.plugins.sandbox.launch import Launch
from app.plugins.sandbox.limits import START_TIMEOUT_S, STOP_GRACE_S, SandboxLimits
from app.plugins.sandbox.model import PluginCode, PluginFailure


class WorkerStartError(Exception):
    """No worker: the interpreter did not start, or died or stalled before its hello."""


class WorkerProcess:
    def __init__(
        self, tenant_id: str, proc: asyncio.subprocess.Process, workdir: str, calls: Calls
    ) -> None:
        self.tenant_id = tenant_id
        self.proc = proc
        self.pid = proc.pid
        self.workdir = workdir
        self.calls = calls
        calls.on_lost = self._lost
        self.layers: dict[str, bool] = {}
        self.in_flight = 0
        """Calls given to it by the pool and not finished."""
        self.fresh = True
        """Started for calls still waiting for it: not stopped to make room before one."""
        self.stop_requested = False
        self.last_used = asyncio.get_running_loop().time()
        self._reporting: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.calls.usable and not self.stop_requested

    def accepts(self, deadline: float) -> bool:
        """Whether a call with this deadline may queue here: never behind a call allowed to
        run longer, so that the first call of a worker to time out is the one it runs."""
        return self.usable and deadline >= self.calls.latest_deadline

    # --- starting ------------------------------------------------------------------------

    @classmethod
    async def start(cls, tenant_id: str, limits: SandboxLimits, launch: Launch) -> WorkerProcess:
        """A worker that said hello, or ``WorkerStartError``."""
        try:
            return await cls._spawn(tenant_id, limits, launch)
        except (OSError, EOFError, protocol.MalformedFrame, protocol.FrameTooLarge) as exc:
            raise WorkerStartError(f"{type(exc).__name__}: {exc}"[:200]) from exc

    @classmethod
    async def _spawn(cls, tenant_id: str, limits: SandboxLimits, launch: Launch) -> WorkerProcess:
        loop = asyncio.get_running_loop()
        workdir = tempfile.mkdtemp(prefix="plugin-worker-")
        to_worker, from_service = os.pipe()
        to_service, from_worker = os.pipe()
        config = {
            "fd_in": to_worker,
            "fd_out": from_worker,
            "seccomp_dir": launch.seccomp_dir,
            "service_ns": launch.service_ns,
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_bytes,
            "open_files": limits.open_files,
            "file_size_bytes": limits.file_size_bytes,
            "max_output_bytes": limits.max_output_bytes,
            "max_reply_bytes": limits.max_reply_bytes,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv(json.dumps(config)),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env={},
                cwd=workdir,
                close_fds=True,
                pass_fds=(to_worker, from_worker),
                start_new_session=True,
            )
        except BaseException:
            for fd in (from_service, to_service):
                os.close(fd)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            # The worker's ends live on in the worker only.
            os.close(to_worker)
            os.close(from_worker)
        calls = Calls(proc.pid, limits)
        worker = cls(tenant_id, proc, workdir, calls)
        try:
            await loop.connect_read_pipe(lambda: calls, os.fdopen(to_service, "rb", 0))
            calls.writer, _ = await loop.connect_write_pipe(
                asyncio.Protocol, os.fdopen(from_service, "wb", 0)
            )
            hello = await asyncio.wait_for(calls.hello, START_TIMEOUT_S)
            worker.layers = _layers(protocol.decode(hello))
        except BaseException:
            calls.kill(None)
            await worker.wait_closed()
            raise
        return worker

    # --- calls ---------------------------------------------------------------------------

    async def call(
        self, plugin: PluginCode, hook: str, args: dict[str, Any], deadline: float
    ) -> tuple[Any, str]:
        """The hook's value and the captured output, or ``PluginFailure``; ``deadline``
        is in the loop's clock. ``TypeError``/``ValueError`` if ``args`` is not JSON."""
        pending = self.calls.submit(plugin, hook, args, deadline)
        try:
            return await pending.future
        except asyncio.CancelledError:
            self.calls.cancelled(pending)
            raise

    def _lost(self) -> None:
        self._reporting = asyncio.get_running_loop().create_task(self._report_lost())

    async def _report_lost(self) -> None:
        self.calls.kill(PluginFailure("crashed", await self._exit_status()))

    async def _exit_status(self) -> str:
        try:
            code = await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            return "the worker closed its pipe: worker killed"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"the worker died of {signal.Signals(-code).name}"
        return f"the worker exited with status {code}"

    # --- stopping ------------------------------------------------------------------------

    def kill(self, failure: PluginFailure | None = None) -> None:
        """SIGKILL the worker's process group; the calls in flight fail with ``failure``."""
        self.calls.kill(failure)

    async def stop(self, failure: PluginFailure | None = None) -> None:
        """Closing its request pipe lets an idle worker exit; killed after a grace. The
        calls still in flight fail with ``failure``."""
        self.stop_requested = True
        self.calls.close(failure)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
        self.calls.kill(failure)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self.proc.wait()
        if self._reporting is not None:
            await self._reporting
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)


def _layers(hello: Any) -> dict[str, bool]:
    layers = hello.get("layers") if isinstance(hello, dict) else None
    if not isinstance(layers, dict) or not all(isinstance(v, bool) for v in layers.values()):
        raise protocol.MalformedFrame("no layers in the worker's hello")
    return {str(name): on for name, on in layers.items()}
