"""Run ``revocation-service serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_healthy(server: ServerProcess) -> None:
    """Poll /healthz until it answers (bounded); fail with the server's log otherwise."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not start:\n{server.log()}")


@contextmanager
def running_server(
    args: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    pipe_log: bool = False,
) -> Iterator[ServerProcess]:
    """``pipe_log``: the server writes its log into a pipe that a thread of this process
    copies to the log file, so that a limit on the server's own file writes
    (``RLIMIT_FSIZE``) leaves its log alone."""
    port = port or free_port()
    log_path = cwd / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), *args],
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE if pipe_log else log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    copier = None
    if pipe_log:
        assert process.stdout is not None
        copier = threading.Thread(target=_copy, args=(process.stdout, log_path), daemon=True)
        copier.start()
    server = ServerProcess(process, port, log_path)
    try:
        wait_until_healthy(server)
        yield server
    finally:
        stop(server)
        if copier is not None:
            copier.join()


def _copy(pipe: IO[bytes], log_path: Path) -> None:
    """Line by line, so that ``ServerProcess.log()`` shows each line once written."""
    with pipe, log_path.open("ab") as log:
        for line in pipe:
            log.write(line)
            log.flush()


def kill(server: ServerProcess) -> None:
    """SIGKILL to the server's process group (``kill -9``: no shutdown of any kind)."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


def stop(server: ServerProcess) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
