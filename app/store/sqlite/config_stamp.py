"""A stamp next to the database that announces configuration changes.

Every request compares the configuration version with the directory's cache. Asking
SQLite for it cost a read transaction per request (and, in WAL mode, re-reading pages
after every revocation's commit). Instead every process writing configuration through a
``SqliteStore`` (the service's workers, the admin CLI) moves a stamp after its commit,
and readers query SQLite only when the stamp moved, and at least every ``RECHECK_S`` in
case a writer died between its commit and the stamp.

The stamp is a slot of ``<database>.config-stamps``, mapped shared into every process
(``SharedStamps``): reading it is a memory read. It used to be a file's modification
time, a ``stat`` system call on every request; that remains the fallback where the file
cannot be mapped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from app.store.sqlite.shared_stamps import SharedStamps

RECHECK_S = 1.0
SLOT = 0


class ConfigStamp:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".config-stamp")
        """The fallback: a file whose modification time is the stamp."""
        self._shared = SharedStamps(database, ".config-stamps")
        self._version: int | None = None
        self._seen: int | None = None
        self._read_at = float("-inf")

    def open(self) -> None:
        self._shared.open()
        with contextlib.suppress(OSError):
            self._create()

    def close(self) -> None:
        self._shared.close()

    def version(self, read: Callable[[], int]) -> int:
        """The cached version, or ``read()`` when the stamp moved or the cache is old."""
        stamp = self._stamp()
        now = time.monotonic()
        if (
            self._version is None
            or stamp is None
            or stamp != self._seen
            or now - self._read_at >= RECHECK_S
        ):
            # Stamp first, read second: a change committed in between is read now and
            # its stamp seen as new next time, which only costs one more read.
            self._version = read()
            self._seen, self._read_at = stamp, now
        return self._version

    def touch(self) -> None:
        """Announce a committed change."""
        self._shared.bump((SLOT,))
        # Also the file's time, set explicitly in nanoseconds (file-system clocks are
        # coarse, and two changes in one tick must still differ), for a process that
        # could not map the stamps. Configuration writes are rare: this costs nothing
        # on the request path.
        with contextlib.suppress(OSError):  # the periodic re-read covers a failed touch
            stamp = max(time.time_ns(), (self._mtime() or 0) + 1)
            self._create()
            os.utime(self.path, ns=(stamp, stamp))

    def _create(self) -> None:
        self.path.open("a").close()

    def _stamp(self) -> int | None:
        shared = self._shared.read(SLOT)
        return shared if shared is not None else self._mtime()

    def _mtime(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None
