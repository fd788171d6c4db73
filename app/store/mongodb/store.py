"""``MongoStore``: the Store protocol on MongoDB 7+ through PyMongo's async API.

Writes that touch more than one document (tenants with their issuers, tenant deletion,
plugin versions, credential registration, revocation) run in multi-document transactions
(snapshot reads, majority journaled commits, see ``transactions``). Every other write is
one atomic single-document operation with the same write concern; reads are majority
reads on the primary. A server that is gone or stalled fails a call's operation within
``deadlines.OPERATION_TIMEOUT_MS`` with ``StoreUnavailable``, and the driver reconnects
by itself when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pymongo import AsyncMongoClient, ReadPreference, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern

from app.errors import Conflict, NotFound
from app.models import (
    AdminKey,
    Client,
    Credential,
    DeliveryAttempt,
    Event,
    Grant,
    MarkKind,
    PluginVersion,
    Receiver,
    ReceiverState,
    RegistrationOutcome,
    RevocationOutcome,
    RevocationPlan,
    SigningKey,
    SubjectClient,
    Tenant,
)
from app.store.base import DELETION_PENDING
from app.store.mongodb import (
    deadlines,
    horizon,
    plugins,
    receivers,
    retention,
    schema,
    signing_keys,
    status_list,
    subjects,
    sweeps,
    write_shards,
)
from app.store.mongodb import documents as docs
from app.store.mongodb.abandoned_sessions import AbandonedSessions
from app.store.mongodb.auth_failures import FailureStamps
from app.store.mongodb.errors import DUPLICATE_KEY, is_duplicate_key, translate_errors
from app.store.mongodb.event_watcher import EventWatcher
from app.store.mongodb.group_commit import GroupCommit
from app.store.mongodb.pending_sweeps import PendingSweeps
from app.store.mongodb.registration import STAMP, register
from app.store.mongodb.revocation import EVENT_COUNTER, NOT_APPLIED, apply_plans, tenant_exists
from app.store.mongodb.transactions import MAJORITY, run_in_transaction
from app.store.mongodb.watcher import ConfigWatcher
from app.store.sweeps import PendingSweep, as_read
from app.types import ClientId, TenantId, TokenHash

T = TypeVar("T")
Document = dict[str, Any]

CLIENT_DEFAULTS: dict[str, Any] = {
    "timeoutMS": deadlines.OPERATION_TIMEOUT_MS,
    "serverSelectionTimeoutMS": deadlines.OPERATION_TIMEOUT_MS,
    "connectTimeoutMS": deadlines.OPERATION_TIMEOUT_MS,
    "appname": "revocation-service",
}
"""Applied unless the URI sets the option: fail fast (503) when the server is gone or
stalled (``deadlines``)."""

BULK_REGISTRATION = 100
"""A registration of more credentials than this is bulk work (``deadlines.bulk``)."""

REVOCATION_BATCH = 64
"""Most revocations of one tenant committed in one transaction (see ``group_commit``)."""

SWEEP_CHUNK = 2_000
"""Credentials per transaction of a sweep (``app.store.sweeps``): some hundreds of KB of
oplog, far below a transaction's 16 MB, and a few seconds on SecantusDB."""

PURGE_CHUNK = 5_000
"""Documents per purge round trip, so no single delete runs long."""

DELETE_CHUNK = 1_000
"""Documents of a deleted tenant's data per transaction."""

LIST_BATCH = 500
"""Tenants per batch of ``list_tenants``: a cursor decodes each batch and the caller reads
it without yielding, so 10,000 tenants in one 1.4 MB batch held the event loop for
tens of milliseconds in a reload that runs behind requests."""

RECORD_ATTEMPTS = 3
"""Rounds of ``record_auth_failure`` against concurrent inserts of the same counts."""


def client_options(uri: str) -> dict[str, Any]:
    """``CLIENT_DEFAULTS`` less what the URI sets (keyword arguments would override it)."""
    in_uri = {key.lower() for key, _ in parse_qsl(urlsplit(uri).query)}
    return {key: value for key, value in CLIENT_DEFAULTS.items() if key.lower() not in in_uri}


class MongoStore:
    name = "mongodb"

    def __init__(
        self,
        uri: str,
        database_name: str = "revocation",
        *,
        retention_s: int = 86_400,
        refresh_interval_s: float = 30.0,
        transaction_retry_s: float = 10.0,
    ) -> None:
        """``retention_s``: how long after ``exp`` the TTL monitor may drop a credential
        or deny entry. ``refresh_interval_s``: period of the fallback config refresh.
        ``transaction_retry_s``: how long write conflicts and other transient
        transaction errors are retried."""
        self._uri = uri
        self._database_name = database_name
        self._retention_s = retention_s
        self._refresh_interval_s = refresh_interval_s
        self._transaction_retry_s = transaction_retry_s
        self._client: AsyncMongoClient[Document] | None = None
        self._database: AsyncDatabase[Document] | None = None
        self._watcher: ConfigWatcher | None = None
        self._events: EventWatcher | None = None
        self._failure_stamps: FailureStamps | None = None
        self._pending: PendingSweeps | None = None
        self._group_commit = GroupCommit(self._apply_revocations, max_batch=REVOCATION_BATCH)
        self._abandoned = AbandonedSessions()

    # --- plumbing ------------------------------------------------------------------------
    @property
    def _db(self) -> AsyncDatabase[Document]:
        if self._database is None:
            raise RuntimeError("MongoStore is not open")
        return self._database

    def _coll(self, name: str) -> AsyncCollection[Document]:
        return self._db[name]

    def _config_changed(self, tenant_id: TenantId) -> None:
        """This instance sees its own configuration writes at once."""
        if self._watcher is not None:
            self._watcher.bump(tenant_id)

    async def _transaction(
        self, callback: Callable[[AsyncClientSession], Awaitable[T]], *, bulk: bool = False
    ) -> T:
        """``bulk``: thousands of documents, given ``deadlines.BULK_TIMEOUT_S`` as a whole
        rather than the operation timeout each."""
        if self._client is None:
            raise RuntimeError("MongoStore is not open")
        async with deadlines.bulk(self._db) if bulk else contextlib.nullcontext():
            return await run_in_transaction(
                self._client,
                callback,
                retry_for_s=self._transaction_retry_s,
                abandoned=self._abandoned,
                commit_timeout_s=None if bulk else deadlines.OPERATION_TIMEOUT_MS / 1000,
            )

    async def _bulk_transaction(self, callback: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        return await self._transaction(callback, bulk=True)

    # --- lifecycle -----------------------------------------------------------------------
    @translate_errors
    async def open(self) -> None:
        if self._client is not None:
            return
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            self._uri, tz_aware=True, **client_options(self._uri)
        )
        try:
            database = client.get_database(
                self._database_name,
                write_concern=MAJORITY,
                read_concern=ReadConcern("majority"),
                read_preference=ReadPreference.PRIMARY,
            )
            async with deadlines.bulk(database):  # an index built on a large collection
                await schema.ensure_schema(database)
            watcher = ConfigWatcher(database, self._refresh_interval_s)
            await watcher.start()
            events = EventWatcher(database[schema.EVENTS])
            try:
                await events.start()
            except BaseException:
                await watcher.stop()
                raise
        except BaseException:
            await client.close()
            raise
        self._events = events
        self._client, self._database, self._watcher = client, database, watcher
        self._failure_stamps = FailureStamps(database[schema.AUTH_FAILURES])
        self._pending = PendingSweeps(database[schema.SWEEPS], watcher)

    async def close(self) -> None:
        client, watcher = self._client, self._watcher
        self._client = self._database = self._watcher = None
        if watcher is not None:
            await watcher.stop()
        events, self._events = self._events, None
        if events is not None:
            await events.stop()
        stamps, self._failure_stamps = self._failure_stamps, None
        if stamps is not None:
            await stamps.stop()
        if client is not None:
            await client.close()

    @translate_errors
    async def ping(self) -> None:
        await self._db.command("ping")

    @property
    def watching(self) -> bool:
        """Whether the change stream behind ``config_version()`` is open right now."""
        return self._watcher is not None and self._watcher.connected

    async def config_version(self) -> int:
        if self._watcher is None:
            raise RuntimeError("MongoStore is not open")
        return self._watcher.version()

    async def config_changes_since(self, version: int) -> tuple[int, frozenset[TenantId]] | None:
        if self._watcher is None:
            raise RuntimeError("MongoStore is not open")
        return self._watcher.changes_since(version)

    # --- tenants ---------------------------------------------------------------------
    @translate_errors
    async def list_tenants(self) -> list[Tenant]:
        # Bulk work: every tenant, 10,000 of them in one cursor whose lifetime the
        # per-operation deadline would bound, failing every request's reload for good.
        async with deadlines.bulk(self._db):
            cursor = (
                self._coll(schema.TENANTS)
                .find({}, {"_id": False})
                .sort("tenant_id", 1)
                .batch_size(LIST_BATCH)
            )
            return [docs.tenant_of(doc) async for doc in cursor]

    @translate_errors
    async def get_tenant(self, tenant_id: TenantId) -> Tenant | None:
        doc = await self._coll(schema.TENANTS).find_one({"tenant_id": tenant_id})
        return None if doc is None else docs.tenant_of(doc)

    @translate_errors
    async def put_tenant(self, tenant: Tenant, issuers: Sequence[str]) -> Tenant:
        tenant_id = tenant.tenant_id
        wanted = list(dict.fromkeys(issuers))

        async def put(session: AsyncClientSession) -> Tenant:
            deleting = await self._coll(schema.DELETED_TENANTS).find_one(
                {"tenant_id": tenant_id}, session=session
            )
            if deleting is not None:
                raise Conflict(DELETION_PENDING)
            taken = await self._coll(schema.ISSUERS).find_one(
                {"issuer": {"$in": wanted}, "tenant_id": {"$ne": tenant_id}}, session=session
            )
            if taken is not None:
                raise Conflict(f"issuer already in use: {taken['issuer']}")
            old = await self._coll(schema.TENANTS).find_one(
                {"tenant_id": tenant_id}, session=session
            )
            stored = Tenant(
                tenant_id=tenant_id,
                settings=tenant.settings,
                key_salt=tenant.key_salt if old is None else old["key_salt"],
                created_at=tenant.created_at if old is None else old["created_at"],
                updated_at=tenant.updated_at,
            )
            await self._coll(schema.TENANTS).replace_one(
                {"tenant_id": tenant_id}, docs.tenant_doc(stored), upsert=True, session=session
            )
            issuers = self._coll(schema.ISSUERS)
            await issuers.delete_many(
                {"tenant_id": tenant_id, "issuer": {"$nin": wanted}}, session=session
            )
            kept = await issuers.distinct("issuer", {"tenant_id": tenant_id}, session=session)
            new = [issuer for issuer in wanted if issuer not in kept]
            if new:
                await issuers.insert_many(
                    [{"tenant_id": tenant_id, "issuer": issuer} for issuer in new],
                    session=session,
                )
            return stored

        try:
            stored = await self._transaction(put)
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                raise Conflict("issuer already in use") from exc
            raise
        self._config_changed(tenant_id)
        return stored

    @translate_errors
    async def delete_tenant(self, tenant_id: TenantId) -> bool:
        at = int(time.time())

        async def delete(session: AsyncClientSession) -> bool:
            result = await self._coll(schema.TENANTS).delete_one(
                {"tenant_id": tenant_id}, session=session
            )
            if not result.deleted_count:
                return False
            for name in schema.CONFIG_COLLECTIONS:
                await self._coll(name).delete_many({"tenant_id": tenant_id}, session=session)
            # Revocation batches, plugin and signing-key writes write these first: one
            # that read the tenant before this commit now meets a write conflict,
            # retries and finds it gone.
            for counter in (
                EVENT_COUNTER,
                plugins.PLUGIN_COUNTER,
                signing_keys.COUNTER,
                receivers.COUNTER,
            ):
                await self._coll(schema.COUNTERS).update_one(
                    {"tenant_id": tenant_id, "name": counter},
                    {"$set": {"deleted_at": at}},
                    upsert=True,
                    session=session,
                )
            # Registrations and grant writes write one of these: the same for them.
            await write_shards.write_all(self._db, session, tenant_id, {"$set": {"deleted_at": at}})
            await self._coll(schema.DELETED_TENANTS).update_one(
                {"tenant_id": tenant_id},
                {"$setOnInsert": {"deleted_at": at, "chunks": 0}},
                upsert=True,
                session=session,
            )
            return True

        deleted = await self._transaction(delete)
        if deleted:
            self._config_changed(tenant_id)
            await self._delete_tenant_data(tenant_id)
        return deleted

    @translate_errors
    async def finish_deletions(self) -> int:
        pending = await self._coll(schema.DELETED_TENANTS).distinct("tenant_id")
        for tenant_id in pending:
            await self._delete_tenant_data(tenant_id)
        return len(pending)

    async def _delete_tenant_data(self, tenant_id: TenantId) -> None:
        """In chunks, each a transaction of its own (a large tenant would outgrow one)."""

        async def chunk(session: AsyncClientSession) -> int | None:
            # Written, not only read: a concurrent finisher's removal of the marker is
            # then a write conflict, so no chunk runs after the tenant id is free again.
            marker = await self._coll(schema.DELETED_TENANTS).find_one_and_update(
                {"tenant_id": tenant_id}, {"$inc": {"chunks": 1}}, session=session
            )
            if marker is None:
                return None
            for name in schema.DATA_COLLECTIONS:
                found = self._coll(name).find(
                    {"tenant_id": tenant_id}, {"_id": True}, limit=DELETE_CHUNK, session=session
                )
                ids = [doc["_id"] async for doc in found]
                if ids:
                    await self._coll(name).delete_many({"_id": {"$in": ids}}, session=session)
                    return len(ids)
            await self._coll(schema.DELETED_TENANTS).delete_one(
                {"tenant_id": tenant_id}, session=session
            )
            return 0

        while await self._transaction(chunk, bulk=True):
            pass

    # --- tenant admin keys ---------------------------------------------------------------
    @translate_errors
    async def add_admin_key(self, key: AdminKey) -> None:
        try:
            await self._coll(schema.ADMIN_KEYS).insert_one(docs.admin_key_doc(key))
        except DuplicateKeyError as exc:
            raise Conflict("an admin key with this key_id exists") from exc
        self._config_changed(key.tenant_id)

    @translate_errors
    async def get_admin_key(self, tenant_id: TenantId, key_id: str) -> AdminKey | None:
        doc = await self._coll(schema.ADMIN_KEYS).find_one(
            {"tenant_id": tenant_id, "key_id": key_id}
        )
        return None if doc is None else docs.admin_key_of(doc)

    @translate_errors
    async def list_admin_keys(self, tenant_id: TenantId) -> list[AdminKey]:
        cursor = self._coll(schema.ADMIN_KEYS).find({"tenant_id": tenant_id}).sort("key_id", 1)
        return [docs.admin_key_of(doc) async for doc in cursor]

    @translate_errors
    async def delete_admin_key(self, tenant_id: TenantId, key_id: str) -> bool:
        result = await self._coll(schema.ADMIN_KEYS).delete_one(
            {"tenant_id": tenant_id, "key_id": key_id}
        )
        if result.deleted_count:
            self._config_changed(tenant_id)
        return result.deleted_count > 0

    # --- clients ------------------------------------------------------------------------
    @translate_errors
    async def get_client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None:
        doc = await self._coll(schema.CLIENTS).find_one(
            {"tenant_id": tenant_id, "client_id": client_id}
        )
        return None if doc is None else docs.client_of(doc)

    @translate_errors
    async def list_clients(self, tenant_id: TenantId) -> list[Client]:
        cursor = self._coll(schema.CLIENTS).find({"tenant_id": tenant_id}).sort("client_id", 1)
        return [docs.client_of(doc) async for doc in cursor]

    @translate_errors
    async def put_client(self, client: Client) -> None:
        await self._coll(schema.CLIENTS).update_one(
            {"tenant_id": client.tenant_id, "client_id": client.client_id},
            {
                "$set": docs.client_doc(client),
                "$setOnInsert": {"created_at": client.created_at},
            },
            upsert=True,
        )
        self._config_changed(client.tenant_id)

    @translate_errors
    async def delete_client(self, tenant_id: TenantId, client_id: ClientId) -> bool:
        result = await self._coll(schema.CLIENTS).delete_one(
            {"tenant_id": tenant_id, "client_id": client_id}
        )
        if result.deleted_count:
            self._config_changed(tenant_id)
        return result.deleted_count > 0

    # --- tenant plugins -------------------------------------------------------------------
    @translate_errors
    async def add_plugin_version(self, plugin: PluginVersion) -> PluginVersion:
        stored = await self._plugin_write(
            lambda session: plugins.add_version(self._db, session, plugin)
        )
        self._config_changed(plugin.tenant_id)
        return stored

    @translate_errors
    async def get_plugin_version(
        self, tenant_id: TenantId, name: str, version: int | None = None
    ) -> PluginVersion | None:
        query: Document = {"tenant_id": tenant_id, "name": name}
        query |= plugins.CURRENT if version is None else {"version": version}
        doc = await self._coll(schema.PLUGINS).find_one(query, {"_id": False})
        return None if doc is None else docs.plugin_of(doc)

    @translate_errors
    async def list_plugin_versions(self, tenant_id: TenantId, name: str) -> list[PluginVersion]:
        cursor = self._coll(schema.PLUGINS).find(
            {"tenant_id": tenant_id, "name": name}, {"_id": False}
        )
        return [docs.plugin_of(doc) async for doc in cursor.sort("version", 1)]

    @translate_errors
    async def list_plugins(self, tenant_id: TenantId) -> list[PluginVersion]:
        cursor = self._coll(schema.PLUGINS).find(
            {"tenant_id": tenant_id, **plugins.CURRENT}, {"_id": False}
        )
        return [docs.plugin_of(doc) async for doc in cursor.sort("name", 1)]

    @translate_errors
    async def set_current_plugin_version(
        self, tenant_id: TenantId, name: str, version: int
    ) -> bool:
        found = await self._plugin_write(
            lambda session: plugins.set_current(self._db, session, tenant_id, name, version)
        )
        if found:
            self._config_changed(tenant_id)
        return found

    @translate_errors
    async def delete_plugin(self, tenant_id: TenantId, name: str) -> bool:
        deleted = await self._plugin_write(
            lambda session: plugins.delete(self._db, session, tenant_id, name)
        )
        if deleted:
            self._config_changed(tenant_id)
        return deleted

    async def _plugin_write(self, write: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        try:
            return await self._transaction(write)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
        # Another transaction created the tenant's plugin counter (or a first version)
        # between our snapshot and our insert: once more, now that it is visible.
        return await self._transaction(write)

    # --- propagation: the tenant's own signing keys ----------------------------------------
    @translate_errors
    async def list_signing_keys(self, tenant_id: TenantId) -> list[SigningKey]:
        cursor = self._coll(schema.SIGNING_KEYS).find({"tenant_id": tenant_id}, {"_id": False})
        return signing_keys.in_list_order([signing_keys.key_of(doc) async for doc in cursor])

    @translate_errors
    async def add_signing_key(self, key: SigningKey, retire_current_at: int | None) -> SigningKey:
        async def add(session: AsyncClientSession) -> SigningKey:
            return await signing_keys.add(self._db, session, key, retire_current_at)

        try:
            stored = await self._transaction(add)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
            # A concurrent first use created the tenant's counter (or its key) between
            # our snapshot and our insert: once more, now that it is visible.
            stored = await self._transaction(add)
        self._config_changed(key.tenant_id)
        return stored

    @translate_errors
    async def drop_retired_signing_keys(self, tenant_id: TenantId, before: int) -> int:
        result = await self._coll(schema.SIGNING_KEYS).delete_many(
            signing_keys.retired_before(tenant_id, before)
        )
        if result.deleted_count:
            self._config_changed(tenant_id)
        return result.deleted_count

    @translate_errors
    async def reseal_signing_key(self, key: SigningKey, sealed_private: bytes) -> bool:
        result = await self._coll(schema.SIGNING_KEYS).update_one(
            signing_keys.same_seal(key), {"$set": {"sealed_private": sealed_private}}
        )
        if result.modified_count:
            self._config_changed(key.tenant_id)
        return result.modified_count > 0

    # --- propagation: receivers of Security Event Tokens ----------------------------------
    @translate_errors
    async def put_receiver(
        self,
        receiver: Receiver,
        cursor: int,
        *,
        limit: int | None = None,
        resume: bool = True,
    ) -> tuple[Receiver, bool]:
        async def put(session: AsyncClientSession) -> tuple[Receiver, bool]:
            return await receivers.put(self._db, session, receiver, cursor, limit, resume)

        try:
            stored = await self._transaction(put)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
            # A concurrent first write created the tenant's receiver counter (or this
            # receiver) between our snapshot and our insert: once more, now visible.
            stored = await self._transaction(put)
        self._config_changed(receiver.tenant_id)
        return stored

    @translate_errors
    async def get_receiver(self, tenant_id: TenantId, receiver_id: str) -> Receiver | None:
        doc = await self._coll(schema.RECEIVERS).find_one(
            receivers.key(tenant_id, receiver_id), receivers.HIDDEN
        )
        return None if doc is None else receivers.receiver_of(doc)

    @translate_errors
    async def list_receivers(self, tenant_id: TenantId | None = None) -> list[Receiver]:
        query = {} if tenant_id is None else {"tenant_id": tenant_id}
        cursor = self._coll(schema.RECEIVERS).find(query, receivers.HIDDEN)
        found = [receivers.receiver_of(doc) async for doc in cursor]
        return sorted(found, key=lambda r: (r.tenant_id, r.receiver_id))

    @translate_errors
    async def delete_receiver(self, tenant_id: TenantId, receiver_id: str) -> bool:
        async def delete(session: AsyncClientSession) -> bool:
            return await receivers.delete(self._db, session, tenant_id, receiver_id)

        deleted = await self._transaction(delete)
        if deleted:
            self._config_changed(tenant_id)
        return deleted

    @translate_errors
    async def get_receiver_state(
        self, tenant_id: TenantId, receiver_id: str
    ) -> ReceiverState | None:
        doc = await self._coll(schema.RECEIVER_STATE).find_one(
            receivers.key(tenant_id, receiver_id), receivers.HIDDEN
        )
        return None if doc is None else receivers.state_of(doc)

    @translate_errors
    async def claim_receiver(
        self, tenant_id: TenantId, receiver_id: str, owner: str, now: int, until: int
    ) -> ReceiverState | None:
        return await receivers.claim(self._db, tenant_id, receiver_id, owner, now, until)

    @translate_errors
    async def record_delivery(
        self,
        state: ReceiverState,
        owner: str,
        log: Sequence[DeliveryAttempt],
        keep_log: int,
    ) -> bool:
        async def record(session: AsyncClientSession) -> None:
            await receivers.record(self._db, session, state, owner, log, keep_log)

        try:
            await self._transaction(record)
        except receivers.LeaseLost:
            return False
        return True

    @translate_errors
    async def delivery_log(
        self, tenant_id: TenantId, receiver_id: str, limit: int
    ) -> list[DeliveryAttempt]:
        if limit <= 0:
            return []  # a MongoDB limit of 0 means no limit
        cursor = (
            self._coll(schema.DELIVERY_LOG)
            .find(receivers.key(tenant_id, receiver_id), receivers.HIDDEN)
            .sort("seq", -1)
            .limit(limit)
        )
        return [receivers.attempt_of(doc) async for doc in cursor]

    # --- credentials ----------------------------------------------------------------------
    @translate_errors
    async def register_credentials(
        self, tenant_id: TenantId, credentials: Sequence[Credential]
    ) -> RegistrationOutcome:
        if not credentials:
            return RegistrationOutcome(registered=0, duplicates=0)

        async def insert(session: AsyncClientSession) -> RegistrationOutcome:
            await self._require_tenant(tenant_id, session)
            return await register(self._db, session, tenant_id, credentials, self._retention_s)

        bulk = len(credentials) > BULK_REGISTRATION
        try:
            return await self._transaction(insert, bulk=bulk)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
        # A concurrent registration of the same token committed between our read and our
        # insert: once more, now that it is visible, it counts as a duplicate or clashes.
        return await self._transaction(insert, bulk=bulk)

    @translate_errors
    async def find_credential(
        self, tenant_id: TenantId, token_hash: TokenHash
    ) -> Credential | None:
        doc = await self._coll(schema.CREDENTIALS).find_one(
            {"tenant_id": tenant_id, "token_hash": token_hash}, docs.HIDDEN
        )
        if doc is None:
            return None
        found = docs.credential_of(doc)
        if found.revoked_at is not None:
            return found
        return as_read(found, doc.get(STAMP), await self._pending_sweeps(tenant_id))

    @translate_errors
    async def count_token_hashes(
        self, tenant_id: TenantId, length: int, prefix: bytes, exp_from: int
    ) -> int:
        # MongoDB orders binary values by length first, then by bytes: this range is
        # exactly the hashes of that length and prefix. Checked again here all the same,
        # since a server comparing bytes alone would return a superset.
        rest = length - len(prefix)
        query = {
            "tenant_id": tenant_id,
            "token_hash": {"$gte": prefix + b"\x00" * rest, "$lte": prefix + b"\xff" * rest},
            "exp": {"$gte": exp_from},
        }
        found = self._coll(schema.CREDENTIALS).find(query, {"_id": False, "token_hash": True})
        return sum(
            [
                len(doc["token_hash"]) == length and doc["token_hash"].startswith(prefix)
                async for doc in found
            ]
        )

    # --- grants and subjects -----------------------------------------------------------
    @translate_errors
    async def put_grant(self, grant: Grant) -> None:
        async def put(session: AsyncClientSession) -> None:
            await self._require_tenant(grant.tenant_id, session)
            await write_shards.enter(self._db, session, grant.tenant_id)
            await self._coll(schema.GRANTS).replace_one(
                {"tenant_id": grant.tenant_id, "grant_id": grant.grant_id},
                docs.grant_doc(grant),
                upsert=True,
                session=session,
            )

        try:
            await self._transaction(put)
            return
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
        # A concurrent write of the same grant, or a first write of the same write
        # shard, committed between our snapshot and our insert: once more.
        await self._transaction(put)

    async def _require_tenant(self, tenant_id: TenantId, session: AsyncClientSession) -> None:
        """Data is written only for a tenant that exists (see ``apply_plans``)."""
        if not await tenant_exists(self._db, session, tenant_id):
            raise NotFound("unknown tenant")

    @translate_errors
    async def get_grant(self, tenant_id: TenantId, grant_id: str) -> Grant | None:
        doc = await self._coll(schema.GRANTS).find_one(
            {"tenant_id": tenant_id, "grant_id": grant_id}
        )
        return None if doc is None else docs.grant_of(doc)

    @translate_errors
    async def subject_clients(self, tenant_id: TenantId, sub: str, now: int) -> list[SubjectClient]:
        by_client = [{"$group": {"_id": "$client_id", "n": {"$sum": 1}}}]
        live = {"tenant_id": tenant_id, "sub": sub, "revoked_at": None, "exp": {"$gt": now}}
        credentials: dict[str, int] = {
            doc["_id"]: doc["n"]
            async for doc in await self._coll(schema.CREDENTIALS).aggregate(
                [{"$match": live}, *by_client]
            )
        }
        grants: dict[str, int] = {
            doc["_id"]: doc["n"]
            async for doc in await self._coll(schema.GRANTS).aggregate(
                [{"$match": {"tenant_id": tenant_id, "sub": sub}}, *by_client]
            )
        }
        return [
            SubjectClient(client_id, credentials.get(client_id, 0), grants.get(client_id, 0))
            for client_id in sorted(credentials.keys() | grants.keys())
        ]

    @translate_errors
    async def subject_sessions(self, tenant_id: TenantId, sub: str, now: int) -> list[str]:
        return await subjects.subject_sessions(self._db, tenant_id, sub, now)

    # --- revocation ------------------------------------------------------------------
    @translate_errors
    async def apply_revocation(
        self, tenant_id: TenantId, plan: RevocationPlan
    ) -> RevocationOutcome:
        if plan.sweeps:
            return await self._apply_sweeps(tenant_id, plan)
        return await self._group_commit.submit(tenant_id, plan)

    async def _apply_revocations(
        self, tenant_id: TenantId, plans: Sequence[RevocationPlan]
    ) -> list[RevocationOutcome]:
        pending = await self._pending_sweeps(tenant_id)

        async def apply(session: AsyncClientSession) -> list[RevocationOutcome]:
            return await apply_plans(
                self._db, session, tenant_id, plans, self._retention_s, pending
            )

        return await self._transaction(apply)

    async def _apply_sweeps(self, tenant_id: TenantId, plan: RevocationPlan) -> RevocationOutcome:
        """A transaction of its own commits the plan and its sweep; then the sweep is
        written to its credentials (``app.store.sweeps``)."""
        pending = await self._pending_sweeps(tenant_id)
        now = int(time.time())

        async def start(session: AsyncClientSession) -> int | None:
            return await sweeps.start(
                self._db, session, tenant_id, plan, pending, self._retention_s, now
            )

        sweep_id = await self._transaction(start)  # small: the sweep's chunks are bulk
        if sweep_id is None:
            return NOT_APPLIED
        self._config_changed(tenant_id)  # this instance's reads see the sweep from now on
        return await self._run_sweep(tenant_id, sweep_id)

    async def _run_sweep(self, tenant_id: TenantId, sweep_id: int) -> RevocationOutcome:
        outcome = await sweeps.run(
            self._db,
            self._bulk_transaction,
            tenant_id,
            sweep_id,
            chunk=SWEEP_CHUNK,
            clock=lambda: int(time.time()),
        )
        self._config_changed(tenant_id)
        return outcome

    async def _pending_sweeps(self, tenant_id: TenantId) -> tuple[PendingSweep, ...]:
        if self._pending is None:
            raise RuntimeError("MongoStore is not open")
        return await self._pending.of(tenant_id)

    @translate_errors
    async def finish_sweeps(self, idle_s: int) -> int:
        idle = await sweeps.idle(self._db, int(time.time()) - idle_s)
        for tenant_id, sweep_id in idle:
            await self._run_sweep(tenant_id, sweep_id)
        return len(idle)

    @translate_errors
    async def ended_session(
        self, tenant_id: TenantId, device_session_id: str, *, tokens: bool = False
    ) -> int | None:
        query: Document = {"tenant_id": tenant_id, "device_session_id": device_session_id}
        if tokens:
            query |= schema.SESSION_TOKENS_ENDED
        doc = await self._coll(schema.SESSIONS).find_one(query)
        return None if doc is None else int(doc["ended_at"])

    @translate_errors
    async def not_before(
        self, tenant_id: TenantId, marks: Sequence[tuple[MarkKind, str]]
    ) -> int | None:
        # One query per kind, on the index's keys, rather than one $or (which SecantusDB
        # would answer with a collection scan), nor ``$in`` on both keys (the same). They
        # are sent at once: a kind more (the subject's) is no round trip more.
        keys: dict[MarkKind, list[str]] = {}
        for kind, key in marks:
            keys.setdefault(kind, []).append(key)

        async def latest(kind: MarkKind, of_kind: list[str]) -> int | None:
            cursor = self._coll(schema.MARKS).find(
                {"tenant_id": tenant_id, "kind": kind.value, "key": {"$in": of_kind}},
                {"at": True, "_id": False},
            )
            return max([int(doc["at"]) async for doc in cursor], default=None)

        found = await asyncio.gather(*(latest(kind, of_kind) for kind, of_kind in keys.items()))
        return max((at for at in found if at is not None), default=None)

    @translate_errors
    async def is_denied(self, tenant_id: TenantId, key: str) -> bool:
        doc = await self._coll(schema.DENY_LIST).find_one(
            {"tenant_id": tenant_id, "key": key}, {"_id": True}
        )
        return doc is not None

    # --- client assertions ----------------------------------------------------------------
    @translate_errors
    async def use_assertion_id(
        self, tenant_id: TenantId, client_id: ClientId, jti: str, exp: int, now: int
    ) -> bool:
        # One upsert on the unique index: no record inserts one; an expired record
        # matches and is taken over; a live one does not match, so the upsert's insert
        # meets the index and fails (the server retries an upsert's duplicate key only
        # when its filter is all equalities, which this one is not).
        try:
            await self._coll(schema.ASSERTION_IDS).update_one(
                {"tenant_id": tenant_id, "client_id": client_id, "jti": jti, "exp": {"$lt": now}},
                {"$set": {"exp": exp, schema.EXPIRE_AT: docs.expire_at(exp, self._retention_s)}},
                upsert=True,
            )
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                return False
            raise
        return True

    # --- failed client authentication ------------------------------------------------------
    @translate_errors
    async def auth_failures(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int
    ) -> list[int]:
        if not keys:
            return []
        cursor = self._coll(schema.AUTH_FAILURES).find(
            {"tenant_id": tenant_id, "key": {"$in": list(keys)}, "window": window_start},
            {"key": True, "count": True, "_id": False},
        )
        counts = {doc["key"]: int(doc["count"]) async for doc in cursor}
        return [counts.get(key, 0) for key in keys]

    @translate_errors
    async def record_auth_failure(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int, window_end: int
    ) -> None:
        # One ``$inc`` upsert per key on the unique index, in one round trip. Of two
        # instances inserting one key at once, the second meets the index: the server
        # retries such an upsert (all equalities on the index's keys) itself, and one it
        # did not is sent again, when it finds the document and increments it.
        expire_at = docs.expire_at(window_end, 0)
        pending = list(keys)
        for _ in range(RECORD_ATTEMPTS):
            updates = [
                UpdateOne(
                    {"tenant_id": tenant_id, "key": key, "window": window_start},
                    {
                        "$inc": {"count": 1},
                        "$setOnInsert": {"exp": window_end, schema.EXPIRE_AT: expire_at},
                    },
                    upsert=True,
                )
                for key in pending
            ]
            try:
                await self._coll(schema.AUTH_FAILURES).bulk_write(updates, ordered=False)
                break
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                pending = [pending[e["index"]] for e in errors]
        else:
            raise Conflict("a failure count kept meeting a concurrent insert")
        if self._failure_stamps is not None:
            # This instance's own, at once; the change stream brings the others'.
            for key in keys:
                self._failure_stamps.bump(tenant_id, key)

    def auth_failures_stamp(self, tenant_id: TenantId, key: str) -> int | None:
        if self._failure_stamps is None:
            return None
        return self._failure_stamps.read(tenant_id, key)

    # --- events ----------------------------------------------------------------------------
    @translate_errors
    async def list_events(self, tenant_id: TenantId, after: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []  # a MongoDB limit of 0 means no limit
        cursor = (
            self._coll(schema.EVENTS)
            .find({"tenant_id": tenant_id, "id": {"$gt": after}}, {"_id": False})
            .sort("id", 1)
            .limit(limit)
        )
        return [docs.event_of(doc) async for doc in cursor]

    def events_stamp(self, tenant_id: TenantId) -> int | None:
        return None if self._events is None else self._events.stamp(tenant_id)

    def events_generation(self) -> int | None:
        return None if self._events is None else self._events.generation()

    @translate_errors
    async def last_event_id(self, tenant_id: TenantId) -> int:
        counter = await self._coll(schema.COUNTERS).find_one(
            {"tenant_id": tenant_id, "name": EVENT_COUNTER}, {"value": True}
        )
        return int(counter["value"]) if counter else 0

    # --- Token Status List ---------------------------------------------------------------
    @translate_errors
    async def allocate_status_indexes(self, tenant_id: TenantId, count: int) -> int:
        async def allocate(session: AsyncClientSession) -> int:
            return await status_list.allocate(self._db, session, tenant_id, count)

        try:
            return await self._transaction(allocate)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise
        # Two first allocations of the tenant upserted its counter at once: once more.
        return await self._transaction(allocate)

    @translate_errors
    async def revoked_status_indexes(self, tenant_id: TenantId, low: int, high: int) -> list[int]:
        pending = await self._pending_sweeps(tenant_id)
        return await status_list.revoked(self._db, tenant_id, low, high, pending)

    @translate_errors
    async def allocated_status_indexes(self, tenant_id: TenantId) -> int:
        return await status_list.allocated(self._db, tenant_id)

    @translate_errors
    async def stored_status_indexes(
        self, tenant_id: TenantId, token_hashes: Sequence[TokenHash]
    ) -> dict[TokenHash, int]:
        return await status_list.stored(self._db, tenant_id, token_hashes)

    # --- housekeeping ------------------------------------------------------------------
    @translate_errors
    async def purge_expired(self, before: int) -> int:
        """The TTL indexes do this continuously; this catches up with what the TTL monitor
        has not reached yet, in chunks, walking the TTL index (``expire_at``)."""
        expired = {
            schema.EXPIRE_AT: {"$lt": docs.expire_at(before, self._retention_s)},
            "exp": {"$lt": before},
        }
        dropped = 0
        for name in (
            schema.CREDENTIALS,
            schema.DENY_LIST,
            schema.ASSERTION_IDS,
            schema.AUTH_FAILURES,
        ):
            collection = self._coll(name)
            while True:
                async with deadlines.bulk(self._db):
                    chunk = collection.find(expired, {"_id": True}).limit(PURGE_CHUNK)
                    ids = [doc["_id"] async for doc in chunk]
                    if ids:
                        result = await collection.delete_many({"_id": {"$in": ids}, **expired})
                        dropped += result.deleted_count
                if len(ids) < PURGE_CHUNK:
                    break
        return dropped

    # --- retention ---------------------------------------------------------------------
    @translate_errors
    async def purge_events(self, tenant_id: TenantId, before: int, limit: int) -> int:
        async with deadlines.bulk(self._db):
            return await retention.purge_events(self._db, tenant_id, before, limit)

    @translate_errors
    async def purge_marks(self, tenant_id: TenantId, set_before: int, limit: int) -> int:
        advance = self._horizon_advance(tenant_id, set_before)
        async with deadlines.bulk(self._db):
            return await retention.purge_marks(self._db, tenant_id, set_before, limit, advance)

    @translate_errors
    async def purge_ended_sessions(
        self, tenant_id: TenantId, ended_before: int, now: int, limit: int
    ) -> int:
        advance = self._horizon_advance(tenant_id, ended_before)
        async with deadlines.bulk(self._db):
            return await retention.purge_ended_sessions(
                self._db, tenant_id, ended_before, now, limit, advance
            )

    def _horizon_advance(self, tenant_id: TenantId, before: int) -> retention.Advance:
        async def advance() -> None:
            await self._transaction(lambda s: horizon.advance(self._db, s, tenant_id, before))

        return advance

    @translate_errors
    async def retention_horizon(self, tenant_id: TenantId) -> int | None:
        return await horizon.read(self._db, None, tenant_id)
