"""The store backends the contract tests run against: one entry per backend.

A factory takes a fresh temporary directory and yields an opened store, closing it
afterwards. Adding a backend is one entry in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from app.store.base import Store
from app.store.sqlite.store import SqliteStore
from tests.support.mongo import mongodb_store

StoreFactory = Callable[[Path], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def sqlite_store(tmp: Path) -> AsyncIterator[Store]:
    store = SqliteStore(tmp / "store.sqlite3")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


BACKENDS: dict[str, StoreFactory] = {
    "sqlite": sqlite_store,
    "mongodb": mongodb_store,
}
