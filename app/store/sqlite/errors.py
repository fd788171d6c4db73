"""SQLite errors as the store contract's errors, with messages that carry no data."""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Literal

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


class _Translated:
    """``with translated():`` raises a ``sqlite3.Error`` as the service's error for it. A
    class, not a generator-based context manager: it wraps every read on the request
    path, and a generator per ``with`` cost more than the read's own Python."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if isinstance(exc, sqlite3.Error):
            error = translate(exc)
            if error is not exc:
                raise error from exc
        return False


_TRANSLATED = _Translated()


def translated() -> _Translated:
    return _TRANSLATED
