"""How workers are started: what the kernel offers here, probed once and cached.

``unshare --user --map-root-user --net --mount`` puts a worker in its own user, network
(a down loopback, nothing else) and mount namespaces when unprivileged user namespaces
work; inside, the worker is root of its namespace, which lets it chroot and mount. The
seccomp binding is a module in site-packages, which a worker started with ``-I -S``
cannot see: its directory is passed to the worker, which imports it before confining
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from app.plugins.sandbox.worker import namespaces

WORKER_SCRIPT = str(Path(__file__).with_name("worker.py"))
UNSHARE_ARGS = ("--user", "--map-root-user", "--net", "--mount", "--")
PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Launch:
    prefix: tuple[str, ...]
    """``unshare … --`` or nothing."""
    seccomp_dir: str | None
    service_ns: dict[str, str]
    """The service's own namespaces, for the worker to tell whether it has new ones."""

    def argv(self, config: str) -> tuple[str, ...]:
        return (*self.prefix, sys.executable, "-I", "-S", "-B", WORKER_SCRIPT, config)


_cached: Launch | None = None


async def launch() -> Launch:
    """Probed on first use; concurrent first uses may probe twice, harmlessly."""
    global _cached
    if _cached is None:
        prefix = await _probe_unshare()
        _cached = Launch(prefix, _seccomp_dir(), namespaces())
    return _cached


async def _probe_unshare() -> tuple[str, ...]:
    unshare, true = shutil.which("unshare"), shutil.which("true")
    if unshare is None or true is None or not sys.platform.startswith("linux"):
        return ()
    argv = (unshare, *UNSHARE_ARGS)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            true,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
        )
    except OSError:
        return ()
    try:
        code = await asyncio.wait_for(proc.wait(), PROBE_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ()
    return argv if code == 0 else ()


def _seccomp_dir() -> str | None:
    try:
        spec = importlib.util.find_spec("pyseccomp")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return os.path.dirname(spec.origin)
