"""Which PyMongo errors mean "the store is unreachable", and the translation to ours.

Every public ``MongoStore`` method goes through ``translate_errors``: a server that is
gone, stepping down or timing out becomes ``StoreUnavailable`` (503, may be retried); a
unique-index clash becomes ``Conflict``; anything else is a bug and propagates.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from app.errors import Conflict, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

# Server error codes that say the server (or its primary role) is going or gone:
# HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress, WriteConcernFailed,
# PrimarySteppedDown, ExceededTimeLimit, SocketException, NotWritablePrimary,
# InterruptedAtShutdown, InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
# NotPrimaryOrSecondary, WriteConcernTimeout (newer servers).
UNAVAILABLE_CODES = frozenset({6, 7, 89, 91, 64, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})

# Error labels the driver attaches when the outcome may change on a retry.
UNAVAILABLE_LABELS = (
    "TransientTransactionError",
    "UnknownTransactionCommitResult",
    "RetryableWriteError",
)


DUPLICATE_KEY = 11000


def is_duplicate_key(exc: BaseException) -> bool:
    """A unique index refused a write (alone, or within a batch)."""
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        return any(error.get("code") == DUPLICATE_KEY for error in errors)
    return False


def is_unavailable(exc: PyMongoError) -> bool:
    """True when ``exc`` says the server cannot be reached or cannot serve us now."""
    if isinstance(exc, ConnectionFailure) or exc.timeout:
        return True
    if any(exc.has_error_label(label) for label in UNAVAILABLE_LABELS):
        return True
    return isinstance(exc, OperationFailure) and exc.code in UNAVAILABLE_CODES


def unavailable(exc: PyMongoError) -> StoreUnavailable:
    """The error's class, and a server error's code name (``WriteConflict`` says the data
    was held by another transaction, not that the server is gone); never its message,
    which may quote the documents."""
    what = type(exc).__name__
    if isinstance(exc, OperationFailure) and (name := (exc.details or {}).get("codeName")):
        what += f" {name}"
    return StoreUnavailable(f"MongoDB unavailable: {what}")


def translate_errors(
    method: Callable[P, Awaitable[T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a store method: PyMongo errors in, service errors out."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                raise Conflict("already exists") from exc
            if is_unavailable(exc):
                raise unavailable(exc) from exc
            raise

    return wrapper
