"""MongoStore on the session's SecantusDB server, one fresh database per store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from app.store.mongodb.store import MongoStore
from tests.support.secantus import fresh_database_name, shared_server


@asynccontextmanager
async def mongodb_store(
    tmp_path: Path, *, database: str | None = None, **options: Any
) -> AsyncIterator[MongoStore]:
    """An opened ``MongoStore`` on a fresh database of its own (or ``database``), dropped
    afterwards. ``options`` go to ``MongoStore``.

    ``tmp_path`` is unused: the server is shared by the test session.
    """
    server = shared_server()
    database = database or fresh_database_name()
    store = MongoStore(server.uri, database, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_database(server.uri, database)


async def drop_database(uri: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        await client.drop_database(database)
    finally:
        await client.close()
