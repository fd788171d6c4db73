"""Choose the backend: MongoDB when a URI is given, else the embedded SQLite store."""

from __future__ import annotations

from app.config import ServiceConfig
from app.store.base import Store


def make_store(config: ServiceConfig) -> Store:
    if config.mongodb_uri:
        from app.store.mongodb.store import MongoStore

        return MongoStore(
            config.mongodb_uri,
            config.mongodb_database,
            retention_s=config.credential_retention_s,
        )
    from app.store.sqlite.store import SqliteStore

    return SqliteStore(config.data_dir / "revocation.sqlite3")
