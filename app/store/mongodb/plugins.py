"""Tenant plugins: the bodies of their write transactions.

One document per kept version; ``current: true`` on exactly one of each name, which the
partial unique index ``tenant_current_plugin`` holds to at most one. Moving ``current``
touches two documents, hence a transaction for every write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from app.models import PluginVersion
from app.store.mongodb import schema
from app.store.mongodb.documents import plugin_doc
from app.store.mongodb.tenant_guard import guard
from app.types import TenantId

Document = dict[str, Any]

PLUGIN_COUNTER = "plugins"
"""The tenant's counter document that every plugin write and the tenant's deletion write."""

CURRENT: Document = {"current": True}


async def add_version(
    db: AsyncDatabase[Document], session: AsyncClientSession, plugin: PluginVersion
) -> PluginVersion:
    await guard(db, session, plugin.tenant_id, PLUGIN_COUNTER)
    versions = db[schema.PLUGINS]
    of_name = {"tenant_id": plugin.tenant_id, "name": plugin.name}
    latest = await versions.find_one(
        of_name, {"version": True}, sort=[("version", -1)], session=session
    )
    stored = replace(plugin, version=1 if latest is None else latest["version"] + 1, current=True)
    # The old current version first: the partial unique index allows one at a time.
    await versions.update_one({**of_name, **CURRENT}, {"$set": {"current": False}}, session=session)
    await versions.insert_one(plugin_doc(stored), session=session)
    return stored


async def set_current(
    db: AsyncDatabase[Document],
    session: AsyncClientSession,
    tenant_id: TenantId,
    name: str,
    version: int,
) -> bool:
    await guard(db, session, tenant_id, PLUGIN_COUNTER)
    versions = db[schema.PLUGINS]
    of_name = {"tenant_id": tenant_id, "name": name}
    target = await versions.find_one(
        {**of_name, "version": version}, {"current": True}, session=session
    )
    if target is None:
        return False
    if not target["current"]:
        await versions.update_one(
            {**of_name, **CURRENT}, {"$set": {"current": False}}, session=session
        )
        await versions.update_one(
            {**of_name, "version": version}, {"$set": {"current": True}}, session=session
        )
    return True


async def delete(
    db: AsyncDatabase[Document], session: AsyncClientSession, tenant_id: TenantId, name: str
) -> bool:
    await guard(db, session, tenant_id, PLUGIN_COUNTER)
    result = await db[schema.PLUGINS].delete_many(
        {"tenant_id": tenant_id, "name": name}, session=session
    )
    return result.deleted_count > 0
