"""One worker seen from the service: starting it, one call at a time, stopping it.

A call that times out, loses the worker, or gets a reply that is too large or not what
the protocol says kills the worker (SIGKILL of its process group): its state is unknown
after that. Nothing a worker sends is trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections import OrderedDict
from typing import Any

from app.plugins.sandbox import protocol
from app.plugins.sandbox.launch import Launch
from app.plugins.sandbox.limits import START_TIMEOUT_S, STOP_GRACE_S, SandboxLimits
from app.plugins.sandbox.model import PluginCode, PluginFailure

HELLO_LIMIT = 64 * 1024
MAX_LOADED = 16
"""Mirrors the worker's module cache; the worker asks again for a source it evicted."""
WORKER_KINDS = frozenset({"exception", "missing_hook", "not_json", "oversized_reply"})


class WorkerStartError(Exception):
    """No worker: the interpreter did not start, or died or stalled before its hello."""


class WorkerProcess:
    def __init__(
        self,
        tenant_id: str,
        limits: SandboxLimits,
        proc: asyncio.subprocess.Process,
        workdir: str,
        reader: asyncio.StreamReader,
        read_transport: asyncio.ReadTransport,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.tenant_id = tenant_id
        self.limits = limits
        self.proc = proc
        self.pid = proc.pid
        self.workdir = workdir
        self.reader = reader
        self.read_transport = read_transport
        self.writer = writer
        self.layers: dict[str, bool] = {}
        self.loaded: OrderedDict[str, None] = OrderedDict()
        self.usable = True
        """False once the worker must not take another call (killed, asked to retire)."""
        self.stop_requested = False
        self.last_used = asyncio.get_running_loop().time()
        self._calls = 0
        self._meta_limit = 6 * limits.max_output_bytes + 16 * 1024

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
        try:
            reader = asyncio.StreamReader(limit=2**16)
            read_transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(to_service, "rb", 0)
            )
            write_transport, write_protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, os.fdopen(from_service, "wb", 0)
            )
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
        worker = cls(tenant_id, limits, proc, workdir, reader, read_transport, writer)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                hello = protocol.decode(await protocol.read_frame(reader, HELLO_LIMIT))
            worker.layers = _layers(hello)
        except BaseException:
            worker.kill()
            await worker.wait_closed()
            raise
        return worker

    # --- one call ------------------------------------------------------------------------

    async def call(
        self, plugin: PluginCode, hook: str, args: dict[str, Any], deadline: float
    ) -> tuple[Any, str]:
        """The hook's value and the captured output, or ``PluginFailure``; ``deadline``
        is in the loop's clock."""
        key = f"{plugin.name}:{plugin.version}:{plugin.sha256}"
        module: dict[str, Any] = {"key": key, "name": plugin.name, "version": plugin.version}
        failure: PluginFailure
        value: Any = None
        try:
            async with asyncio.timeout_at(deadline):
                meta = await self._exchange(hook, args, module, plugin)
                if meta["ok"]:
                    body = await protocol.read_frame(self.reader, self.limits.max_reply_bytes)
                    value = protocol.decode(body)
        except TimeoutError:
            failure = PluginFailure("timeout", "no reply in time: worker killed")
        except protocol.FrameTooLarge as exc:
            failure = PluginFailure("oversized_reply", f"{exc}: worker killed")
        except protocol.MalformedFrame as exc:
            failure = PluginFailure("malformed_reply", f"{exc}: worker killed")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            failure = PluginFailure("crashed", await self._exit_status())
        except (TypeError, ValueError):
            raise  # the arguments are not JSON: nothing was sent
        except BaseException:
            self.kill()  # cancelled half-way: the worker's state is unknown
            raise
        else:
            self.last_used = asyncio.get_running_loop().time()
            if meta["ok"]:
                return value, meta["output"]
            if meta.get("retire") is True:
                self.usable = False
            if meta["kind"] != "oversized_reply":
                raise PluginFailure(meta["kind"], meta["detail"])
            failure = PluginFailure("oversized_reply", f"{meta['detail']}: worker killed")
        self.kill()
        raise failure

    async def _exchange(
        self, hook: str, args: dict[str, Any], module: dict[str, Any], plugin: PluginCode
    ) -> dict[str, Any]:
        key = module["key"]
        if key not in self.loaded:
            module["source"] = plugin.source
        meta = await self._send(hook, args, module)
        if not meta["ok"] and meta["kind"] == "need_source":
            if "source" in module:
                raise protocol.MalformedFrame("asked for a source it was given")
            self.loaded.pop(key, None)
            meta = await self._send(hook, args, {**module, "source": plugin.source})
            if not meta["ok"] and meta["kind"] == "need_source":
                raise protocol.MalformedFrame("asked for a source it was given")
        if meta["cached"]:
            # The worker keeps one version of a plugin: loading one drops the others.
            for other in [k for k in self.loaded if k.startswith(f"{plugin.name}:")]:
                del self.loaded[other]
            self.loaded[key] = None
            self.loaded.move_to_end(key)
            while len(self.loaded) > MAX_LOADED:
                self.loaded.popitem(last=False)
        else:
            self.loaded.pop(key, None)
        return meta

    async def _send(
        self, hook: str, args: dict[str, Any], module: dict[str, Any]
    ) -> dict[str, Any]:
        self._calls += 1
        self.writer.write(
            protocol.encode({"id": self._calls, "hook": hook, "args": args, "module": module})
        )
        await self.writer.drain()
        meta = protocol.decode(await protocol.read_frame(self.reader, self._meta_limit))
        return _meta(meta, self._calls)

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

    def kill(self) -> None:
        """SIGKILL the worker's process group (anything it managed to start included)."""
        self.usable = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._close_pipes()

    async def stop(self) -> None:
        """Closing its request pipe lets an idle worker exit; killed after a grace."""
        self.usable = False
        self._close_pipes()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
        self.kill()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self.proc.wait()
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    def _close_pipes(self) -> None:
        self.writer.close()
        self.read_transport.close()


def _layers(hello: Any) -> dict[str, bool]:
    if not isinstance(hello, dict) or hello.get("hello") is not True:
        raise protocol.MalformedFrame("no hello from the worker")
    layers = hello.get("layers")
    if not isinstance(layers, dict) or not all(isinstance(v, bool) for v in layers.values()):
        raise protocol.MalformedFrame("no layers in the worker's hello")
    return {str(name): on for name, on in layers.items()}


def _meta(meta: Any, call_id: int) -> dict[str, Any]:
    """The reply's metadata, checked field by field: anything else is malformed."""
    if not isinstance(meta, dict) or meta.get("id") != call_id:
        raise protocol.MalformedFrame("a reply to another request")
    if not isinstance(meta.get("output"), str) or not isinstance(meta.get("cached"), bool):
        raise protocol.MalformedFrame("a reply without output")
    ok = meta.get("ok")
    if ok is True:
        return meta
    if ok is not False or not isinstance(meta.get("detail"), str):
        raise protocol.MalformedFrame("a reply that is neither a value nor a failure")
    if meta.get("kind") not in WORKER_KINDS | {"need_source"}:
        raise protocol.MalformedFrame("a failure of an unknown kind")
    return meta
