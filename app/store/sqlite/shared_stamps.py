"""A file of 8-byte stamps next to the database, mapped shared into every process.

Every process that opens the store maps the same file (every worker runs on the machine
that holds it); a writer moves a slot after its commit, and a reader that saw the slot
hold the same value twice knows nothing it watches was committed in between. Slots are
chosen by hash by the callers (``event_stamps``, ``auth_failures``): two things sharing
a slot only cost each other a spurious read.

The slots are read and written as native unsigned 64-bit integers through a memoryview
of the map, a step cheaper than ``struct`` per access (a bump is on every revocation's
path); the file never leaves the machine, so its byte order is the machine's.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from collections.abc import Iterable
from pathlib import Path

SLOTS = 4096
_SLOT_BYTES = 8


class SharedStamps:
    """``SLOTS`` slots of ``<database><suffix>``. Without the map (a file system that
    cannot map it) every read answers None and every bump does nothing: the callers then
    read the store instead."""

    def __init__(self, database: Path, suffix: str) -> None:
        self.path = database.with_name(database.name + suffix)
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None
        """The map as ``SLOTS`` unsigned 64-bit integers."""

    def open(self) -> None:
        size = SLOTS * _SLOT_BYTES
        with contextlib.suppress(OSError, ValueError):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)  # zeros; a second process's truncate is a no-op
                self._map = mmap.mmap(fd, size)
                self._view = memoryview(self._map).cast("Q")
            finally:
                os.close(fd)

    def close(self) -> None:
        view, self._view = self._view, None
        if view is not None:
            view.release()  # a map with a view still on it cannot close
        stamps, self._map = self._map, None
        if stamps is not None:
            stamps.close()

    def read(self, slot: int) -> int | None:
        view = self._view
        if view is None:
            return None
        value: int = view[slot]
        return value

    def bump(self, slots: Iterable[int]) -> None:
        """After the commit, in the order given. A new value each time (nanoseconds, and
        past the old one: two processes bumping a slot at once still leave a value that
        neither read before); a torn or concurrent write also reads as a change, which
        only costs a reader a read of the store."""
        view = self._view
        if view is None:
            return
        now = time.time_ns()
        for slot in slots:
            old: int = view[slot]
            view[slot] = now if now > old else (old + 1) % 2**64
