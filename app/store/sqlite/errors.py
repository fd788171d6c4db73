"""SQLite errors as the store contract's errors, with messages that carry no data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Conflict, StoreUnavailable

# Primary result codes meaning the file cannot be used now (extended codes keep them
# in the low byte). Anything else is a bug and surfaces as a server error.
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def closed() -> StoreUnavailable:
    return StoreUnavailable("the SQLite store is not open")


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock this one needs."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def is_unavailable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in UNAVAILABLE_CODES


def translate(exc: BaseException) -> BaseException:
    """The error a caller of the store sees for ``exc``."""
    if not isinstance(exc, sqlite3.Error):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict("the record already exists")
    if is_unavailable(exc):
        name = getattr(exc, "sqlite_errorname", "error")
        error = StoreUnavailable(f"the SQLite store is unavailable ({name})")
        error.__cause__ = exc
        return error
    return exc


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        error = translate(exc)
        if error is exc:
            raise
        raise error from exc
