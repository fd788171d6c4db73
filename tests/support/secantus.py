"""SecantusDB, a MongoDB wire-protocol server, as the tests' MongoDB.

Test-only: production runs MongoDB 7+. Two ways to run it:

- ``InProcessServer``: threads in the test process, fast to start; ``shared_server()``
  starts one lazily for the whole test session and stops it when the process exits.
- ``ServerProcess``: a child process that can be killed (SIGKILL) and started again on
  the same port and storage directory, for "the database went away" tests.

Both advertise a one-node replica set named ``secantus`` (transactions and change
streams need one). The TTL monitor is off unless asked for: tests use small timestamps,
which the monitor would otherwise delete under their feet.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

import secantus

from tests.support.server import free_port

REPLICA_SET = "secantus"
START_TIMEOUT_S = 30.0


def mongodb_uri(port: int, host: str = "127.0.0.1") -> str:
    return f"mongodb://{host}:{port}/?replicaSet={REPLICA_SET}"


def fresh_database_name(prefix: str = "t") -> str:
    """A database of its own for one test (isolation without a server per test)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class _Server:
    """A SecantusDB server on ``port``; a context manager that starts and stops it."""

    port: int

    @property
    def uri(self) -> str:
        return mongodb_uri(self.port)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class InProcessServer(_Server):
    def __init__(self, storage_path: Path, *, ttl_sweep_seconds: float = 0.0) -> None:
        self.storage_path = storage_path
        self._server = secantus.SecantusDBServer(
            port=0, storage_path=str(storage_path), ttl_sweep_seconds=ttl_sweep_seconds
        )
        self.port = 0

    def start(self) -> None:
        self._server.start()
        self.port = int(self._server.port)

    def stop(self) -> None:
        self._server.stop()


LAUNCHER = """
import signal, sys
import secantus

port, storage_path = int(sys.argv[1]), sys.argv[2]
server = secantus.SecantusDBServer(
    host="127.0.0.1",
    port=port,
    storage_path=storage_path,
    ttl_sweep_seconds=float(sys.argv[3]),
    sync_on_commit=sys.argv[4] == "sync",
    transaction_lifetime_seconds=float(sys.argv[5]),
)

def stop(signum, frame):
    server.stop()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
server.start()
server.wait()
"""
"""The server in a child process. Not ``secantusd-py``: that daemon ignores the TTL
sweep period of its configuration file (0.7.0b3) and always sweeps each minute."""

SYNC_ON_COMMIT = True
"""SecantusDB ignores the write concern of ``commitTransaction``: without this, a
committed transaction can be lost to a SIGKILL, where MongoDB's ``w: majority`` commit
is journaled. Fsync on every commit gives crash tests MongoDB's guarantee."""


PAUSE_TIMEOUT_S = 10.0


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state ``T`` in ``/proc``)."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            # The state follows the parenthesised command name, which may hold spaces.
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # a thread that exited meanwhile
        if state not in ("T", "t"):
            return False
    return True


class ServerProcess(_Server):
    """SecantusDB in a child process, on a fixed port and storage directory."""

    def __init__(
        self,
        storage_path: Path,
        *,
        port: int | None = None,
        ttl_sweep_seconds: float = 0.0,
        sync_on_commit: bool = SYNC_ON_COMMIT,
        transaction_lifetime_s: float = 60.0,
    ) -> None:
        """``transaction_lifetime_s``: how long a transaction may sit unused before the
        server aborts it (MongoDB's ``transactionLifetimeLimitSeconds``, 60 by default):
        what ends the open transaction of a client that was killed."""
        self.storage_path = storage_path
        self.port = port or free_port()
        self.ttl_sweep_seconds = ttl_sweep_seconds
        self.sync_on_commit = sync_on_commit
        self.transaction_lifetime_s = transaction_lifetime_s
        self.log_path = storage_path.with_name(storage_path.name + ".log")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError("already running")
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    LAUNCHER,
                    str(self.port),
                    str(self.storage_path),
                    str(self.ttl_sweep_seconds),
                    "sync" if self.sync_on_commit else "nosync",
                    str(self.transaction_lifetime_s),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"secantusd exited; see {self.log_path}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"secantusd did not listen within {START_TIMEOUT_S}s")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a machine dies."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections open and answers nothing, as a
        machine that hangs, or a stop-the-world pause, would. Returns once every thread
        of it has stopped: the signal is delivered asynchronously, and a server running
        on the other CPU meanwhile answered a request sent right after ``kill`` (a test
        then saw a "stalled" transaction commit, and its later commit wait)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while not _stopped(self._process.pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"secantusd did not stop within {PAUSE_TIMEOUT_S}s")
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT: after ``pause()``, it answers again where it stopped."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


_shared: InProcessServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> InProcessServer:
    """One in-process server for the whole test session, started on first use and
    stopped (its storage removed) when the test process exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            directory = Path(tempfile.mkdtemp(prefix="secantus-"))
            server = InProcessServer(directory / "data")
            server.start()

            def stop() -> None:
                server.stop()
                shutil.rmtree(directory, ignore_errors=True)

            atexit.register(stop)
            _shared = server
        return _shared
