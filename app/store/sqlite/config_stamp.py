"""A file next to the database whose modification time announces configuration changes.

Every request compares the configuration version with the directory's cache. Asking
SQLite for it cost a read transaction per request (and, in WAL mode, re-reading pages
after every revocation's commit); a ``stat`` of this file is a fraction of that. Every
process writing configuration through a ``SqliteStore`` (the service's workers, the
admin CLI) sets the file's time after its commit; readers query SQLite when the time
moved, and at least every ``RECHECK_S`` in case a writer died between its commit and
the touch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

RECHECK_S = 1.0


class ConfigStamp:
    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".config-stamp")
        self._version: int | None = None
        self._seen: int | None = None
        self._read_at = float("-inf")

    def create(self) -> None:
        with contextlib.suppress(OSError):
            self.path.open("a").close()

    def version(self, read: Callable[[], int]) -> int:
        """The cached version, or ``read()`` when the stamp moved or the cache is old."""
        mtime = self._mtime()
        now = time.monotonic()
        if (
            self._version is None
            or mtime is None
            or mtime != self._seen
            or now - self._read_at >= RECHECK_S
        ):
            # Stat first, read second: a change committed in between is read now and
            # its stamp seen as new next time, which only costs one more read.
            self._version = read()
            self._seen, self._read_at = mtime, now
        return self._version

    def touch(self) -> None:
        """Announce a committed change. The time is set explicitly in nanoseconds:
        file-system clocks are coarse, and two changes in one tick must still differ."""
        with contextlib.suppress(OSError):  # the periodic re-read covers a failed touch
            stamp = max(time.time_ns(), (self._mtime() or 0) + 1)
            self.create()
            os.utime(self.path, ns=(stamp, stamp))

    def _mtime(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None
