"""Opening the two kinds of connection: the writer's and the event loop's reader."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from app.errors import StoreUnavailable
from app.store.sqlite.errors import is_busy
from app.store.sqlite.schema import migrate

WRITER_BUSY_TIMEOUT_S = 5.0
# Reads run on the event loop: in WAL mode they wait only in rare recovery cases, and
# then not for long.
READER_BUSY_TIMEOUT_S = 1.0
WAL_SIZE_LIMIT = 64 * 1024 * 1024
WRITER_CACHE_KIB = 64 * 1024


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions, the writer issues BEGIN itself.
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY without
    # calling the busy handler when waiting could deadlock: when several processes open
    # a new file at once, all but one get it. Back off and retry within the busy timeout.
    deadline = time.monotonic() + WRITER_BUSY_TIMEOUT_S
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if mode != "wal":
            raise StoreUnavailable("the SQLite database cannot be switched to WAL mode")
        return


def open_writer(path: Path) -> sqlite3.Connection:
    """The writer's connection, with the schema migrated."""
    conn = _connect(path, WRITER_BUSY_TIMEOUT_S)
    try:
        _use_wal(conn)
        # FULL: in WAL mode, every commit is fsynced before the method returns.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")
        # The writer's page cache survives its own commits (it is the only writer):
        # room for the indexes' upper levels of a few million credentials.
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB:d}")
        migrate(conn)
        # From now on the writer waits for the lock itself (``writer.begin_immediate``).
        conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return conn


def open_reader(path: Path) -> sqlite3.Connection:
    """The event loop's connection, for reads only."""
    conn = _connect(path, READER_BUSY_TIMEOUT_S)
    try:
        conn.execute("PRAGMA query_only = ON")
    except BaseException:
        conn.close()
        raise
    return conn
