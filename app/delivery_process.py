"""The delivery process: ``revocation-service deliver`` runs the push ``Deliverer`` until
stopped, and ``serve --delivery process`` (the default) keeps one beside uvicorn.

Pushing Security Event Tokens costs a signature and a POST per receiver and event: with
many receivers, more CPU than the revocations themselves. Off the HTTP workers' event
loops and at a lower CPU priority (``--nice``), it takes the CPU the workers leave: under
a burst the receivers lag and catch up after, and revocations keep their pace. The
receivers' leases (``Store.claim_receiver``) keep several ``deliver`` processes, on one
host or on many, safe. A child of ``serve`` ends with it even when ``serve`` is killed
(``PR_SET_PDEATHSIG`` on Linux, and a check of its parent everywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Coroutine
from typing import Any

import structlog
import uvloop

from app.bootstrap import open_services
from app.config import ServiceConfig
from app.errors import ConfigError, StoreUnavailable
from app.logging import configure_logging
from app.propagation.delivery import Deliverer

log = structlog.get_logger("revocation.delivery")

SERVE_NICE = 19
"""How much ``serve`` lowers its delivery process's priority: the lowest, about 1/70 of
a worker's share of a busy CPU (Linux's nice weights), all of an idle one."""
PARENT_CHECK_S = 1.0
RESTART_DELAY_S = 1.0
STOP_TIMEOUT_S = 20.0
STEP_TIMEOUT_S = 15.0
"""The longest one step of a ``deliver`` process's own stop may take."""
_PR_SET_PDEATHSIG = 1


# --- the ``deliver`` command --------------------------------------------------------------
def deliver(config: ServiceConfig, *, nice: int = 0, parent_pid: int | None = None) -> int:
    """Deliver until SIGTERM (or SIGINT; or, with ``parent_pid``, until that process
    ends). The exit code: 0, 2 for a configuration error, 3 when the store is down."""
    configure_logging(json=config.log_json, level=config.log_level)
    if nice:
        os.nice(nice)
    if parent_pid is not None:
        _exit_with_parent()
        # Ctrl-C reaches the whole process group: ``serve`` stops this process itself.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run(config, parent_pid))
    except ConfigError as exc:
        log.error("delivery_failed", error=str(exc), file=exc.source, at=exc.key)
        return 2
    except StoreUnavailable as exc:
        log.error("delivery_failed", error=f"the store is unreachable: {exc}")
        return 3
    return 0


async def _run(config: ServiceConfig, parent_pid: int | None) -> None:
    services = await open_services(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if parent_pid is None:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    watch = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    deliverer = Deliverer(services, lease_s=config.delivery_lease_s)
    try:
        await deliverer.start()
        log.info("delivery_started", pid=os.getpid(), owner=deliverer.owner)
        await stop.wait()
    finally:
        # Each receiver's worker records what it delivered and gives up its lease.
        await _bounded("deliverer", deliverer.stop())
        if watch is not None:
            watch.cancel()
        await _bounded("services", services.close())
        await _bounded("store", services.store.close())
    log.info("delivery_stopped", pid=os.getpid())


async def _bounded(step: str, work: Coroutine[Any, Any, None]) -> None:
    """A step of stopping, within ``STEP_TIMEOUT_S``; past it the process ends at once: a
    stop that hangs must not leave a process behind (its leases run out by themselves)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            await work
    except TimeoutError:
        log.error("delivery_stop_timed_out", step=step, after_s=STEP_TIMEOUT_S)
        os._exit(1)


def _exit_with_parent() -> None:
    """SIGTERM when the parent ends, however it ends (Linux)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop once the parent is gone (also when it died before ``_exit_with_parent``)."""
    while True:
        if os.getppid() != parent_pid:
            break
        await asyncio.sleep(PARENT_CHECK_S)
    log.warning("delivery_parent_gone", parent_pid=parent_pid)
    stop.set()


# --- ``serve``'s child ----------------------------------------------------------------------
def command(config: ServiceConfig) -> list[str]:
    """``serve``'s ``deliver`` command line (a MongoDB URI goes in the environment, not
    in a command line that ``ps`` shows)."""
    argv = [sys.executable, "-m", "app", "deliver", "--data-dir", str(config.data_dir)]
    if config.plugins_dir is not None:
        argv += ["--plugins-dir", str(config.plugins_dir)]
    if config.fetch_allow_private:
        argv.append("--fetch-allow-private")
    if config.log_json is not None:
        argv.append("--log-json" if config.log_json else "--no-log-json")
    argv += ["--log-level", config.log_level, "--nice", str(SERVE_NICE)]
    argv += ["--delivery-lease-s", str(config.delivery_lease_s)]
    return [*argv, "--parent-pid", str(os.getpid())]


class DeliveryProcess:
    """``serve``'s ``deliver`` child, started again when it dies (a crash, the OOM
    killer); one that stopped cleanly (its own SIGTERM) stays stopped."""

    def __init__(self, config: ServiceConfig) -> None:
        self.argv = command(config)
        self.env = dict(os.environ)
        if config.mongodb_uri:
            self.env["MONGODB_URI"] = config.mongodb_uri
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._supervise, name="delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join()

    def _supervise(self) -> None:
        # The child is started from this thread, which outlives it: PR_SET_PDEATHSIG
        # fires when the thread that started a child ends.
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                process = self._process = subprocess.Popen(self.argv, env=self.env)  # noqa: S603 (our argv)
            log.info("delivery_process_started", pid=process.pid)
            code = process.wait()
            if self._stopping.is_set() or code == 0:
                return
            log.error("delivery_process_exited", pid=process.pid, code=code)
            self._stopping.wait(RESTART_DELAY_S)
