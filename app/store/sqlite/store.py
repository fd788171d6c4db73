"""``SqliteStore``: the ``Store`` protocol on one SQLite file.

Writes go to the group-commit writer (``writer.py``) and return once committed (fsynced).
Reads run inline on the event loop with a connection of their own: each is one indexed
query, and in WAL mode it never waits for the writer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

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
from app.store.sqlite import (
    auth_failures,
    config_changes,
    connection,
    horizon,
    plugins,
    receivers,
    retention,
    revocation,
    signing_keys,
    status_list,
    subjects,
    sweeps,
    writes,
)
from app.store.sqlite.config_stamp import ConfigStamp
from app.store.sqlite.connection import open_reader, open_writer
from app.store.sqlite.errors import closed, translated
from app.store.sqlite.event_stamps import EventStamps
from app.store.sqlite.rows import (
    admin_key_of,
    client_of,
    credential_of,
    event_of,
    grant_of,
    plugin_of,
    tenant_of,
)
from app.store.sqlite.writer import Writer
from app.types import ClientId, TenantId, TokenHash

T = TypeVar("T")

PURGE_CHUNK = 5_000
"""Rows per purge transaction, so revocations are not held up behind a long purge."""

DELETE_CHUNK = 5_000
"""Rows of a deleted tenant's data per transaction, for the same reason."""

HEAVY_REGISTRATION = 100

SWEEP_CHUNK = 10_000
"""Credentials per transaction of a sweep (``app.store.sweeps``): a client's million
credentials hold up other writes for a few milliseconds at a time."""
"""Registrations of more credentials than this run off the event loop."""

_TENANT = "SELECT tenant_id, settings, key_salt, created_at, updated_at FROM tenants"
_ADMIN_KEY = "SELECT tenant_id, key_id, key_hash, created_at FROM admin_keys"
_CLIENT = """SELECT tenant_id, client_id, type, token_endpoint_auth_method, scope, enabled,
    secret_hash, secret_encrypted, jwks, jwks_uri, created_at, updated_at FROM clients"""

SUBJECT_CLIENTS = """SELECT client_id, sum(credentials), sum(grants) FROM (
    SELECT client_id, count(*) AS credentials, 0 AS grants FROM credentials
    WHERE tenant_id = :tenant AND sub = :sub AND revoked_at IS NULL AND exp > :now
    GROUP BY client_id
    UNION ALL
    SELECT client_id, 0, count(*) FROM grants WHERE tenant_id = :tenant AND sub = :sub
    GROUP BY client_id
) GROUP BY client_id ORDER BY client_id"""

LIST_EVENTS = """SELECT id, time, type, cause, count, client_id, sub, grant_id, token_type,
    jti, device_session_id
FROM events WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?"""


_MARK = "SELECT at FROM not_before WHERE tenant_id = ? AND kind = ? AND key = ?"


def not_before_query(marks: int) -> str:
    """The latest of ``marks`` not-before marks: one primary-key lookup each. (With three
    ``OR`` terms SQLite searched on ``tenant_id`` alone: every mark of the tenant, per
    JWT presented.) Placeholders only: the values are bound, never formatted in."""
    return f"SELECT max(at) FROM ({' UNION ALL '.join([_MARK] * marks)})"  # noqa: S608


COUNT_TOKEN_HASHES = """SELECT count(*) FROM credentials WHERE tenant_id = ?
AND token_hash BETWEEN ? AND ? AND length(token_hash) = ? AND exp >= ?"""


def _itself(outcome: RevocationOutcome | None) -> RevocationOutcome | None:
    return outcome


def _second(started: tuple[int | None, RevocationOutcome | None]) -> RevocationOutcome | None:
    return started[1]


def hash_range(length: int, prefix: bytes) -> tuple[bytes, bytes]:
    """The lowest and highest hash of ``length`` bytes that begins with ``prefix``."""
    rest = length - len(prefix)
    return prefix + b"\x00" * rest, prefix + b"\xff" * rest


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._config = ConfigStamp(path)
        self._failure_stamps = auth_failures.FailureStamps(path)
        self._event_stamps = EventStamps(path)

    @property
    def writer(self) -> Writer:
        """The running writer; raises ``StoreUnavailable`` when there is none."""
        if self._writer is None or not self._writer.running:
            raise closed()
        return self._writer

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        writer = Writer(
            partial(open_writer, self.path),
            name=f"sqlite-writer:{self.path.name}",
            lock_timeout_s=connection.WRITER_BUSY_TIMEOUT_S,
        )
        await writer.start()
        try:
            with translated():
                self._reader = open_reader(self.path)
        except BaseException:
            await writer.stop()
            raise
        self._writer = writer
        self._config.open()
        self._failure_stamps.open()
        self._event_stamps.open()

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if writer is not None:
            await writer.stop()
        if reader is not None:
            reader.close()
        self._config.close()
        self._failure_stamps.close()
        self._event_stamps.close()

    async def ping(self) -> None:
        if self._writer is None or not self._writer.running:
            raise closed()
        self._rows("SELECT version FROM config_version WHERE id = 1", ())

    async def config_version(self) -> int:
        return self._config.version(self._read_config_version)

    async def config_changes_since(self, version: int) -> tuple[int, frozenset[TenantId]] | None:
        return self._read(lambda conn: config_changes.since(conn, version))

    def _read_config_version(self) -> int:
        version: int = self._rows("SELECT version FROM config_version WHERE id = 1", ())[0][0]
        return version

    # --- plumbing --------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        if self._reader is None:
            raise closed()
        with translated():
            return self._reader.execute(sql, params).fetchall()

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """A read of more than one statement, on the reader connection."""
        if self._reader is None:
            raise closed()
        with translated():
            return query(self._reader)

    async def _write(self, job: Callable[[sqlite3.Connection], T], *, heavy: bool = False) -> T:
        """``heavy``: thousands of rows, run off the event loop (see ``writer``)."""
        return await self.writer.submit(job, heavy=heavy)

    async def _write_events(
        self,
        tenant_id: TenantId,
        job: Callable[[sqlite3.Connection], T],
        outcome: Callable[[T], RevocationOutcome | None],
        *,
        heavy: bool = False,
    ) -> T:
        """A write that may append events: once committed, every process's waiters
        learn of them (``event_stamps``), even when this caller was cancelled meanwhile
        (the writer announces them, ``committed``)."""

        def announce(result: T) -> None:
            applied = outcome(result)
            if applied is not None and applied.event_ids:
                self._event_stamps.bump(tenant_id)

        return await self.writer.submit(job, heavy=heavy, committed=announce)

    async def _write_config(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """A write that may bump ``config_version``: other processes learn of it."""
        try:
            return await self._write(job)
        finally:
            self._config.touch()

    # --- tenants ---------------------------------------------------------------------------

    async def list_tenants(self) -> list[Tenant]:
        return [tenant_of(r) for r in self._rows(_TENANT + " ORDER BY tenant_id", ())]

    async def get_tenant(self, tenant_id: TenantId) -> Tenant | None:
        rows = self._rows(_TENANT + " WHERE tenant_id = ?", (tenant_id,))
        return tenant_of(rows[0]) if rows else None

    async def put_tenant(self, tenant: Tenant, issuers: Sequence[str]) -> Tenant:
        issuers = tuple(issuers)
        return await self._write_config(lambda conn: writes.put_tenant(conn, tenant, issuers))

    async def delete_tenant(self, tenant_id: TenantId) -> bool:
        at = int(time.time())
        deleted = await self._write_config(lambda conn: writes.delete_tenant(conn, tenant_id, at))
        if deleted:
            await self._delete_tenant_data(tenant_id)
        return deleted

    async def finish_deletions(self) -> int:
        pending = [row[0] for row in self._rows("SELECT tenant_id FROM deleted_tenants", ())]
        for tenant_id in pending:
            await self._delete_tenant_data(tenant_id)
        return len(pending)

    async def _delete_tenant_data(self, tenant_id: TenantId) -> None:
        """In chunks, each its own job: other tenants' writes go in between."""
        while await self._write(
            lambda conn: writes.delete_tenant_data(conn, tenant_id, DELETE_CHUNK), heavy=True
        ):
            pass

    # --- tenant admin keys -------------------------------------------------------------------

    async def add_admin_key(self, key: AdminKey) -> None:
        await self._write_config(lambda conn: writes.add_admin_key(conn, key))

    async def get_admin_key(self, tenant_id: TenantId, key_id: str) -> AdminKey | None:
        rows = self._rows(_ADMIN_KEY + " WHERE tenant_id = ? AND key_id = ?", (tenant_id, key_id))
        return admin_key_of(rows[0]) if rows else None

    async def list_admin_keys(self, tenant_id: TenantId) -> list[AdminKey]:
        rows = self._rows(_ADMIN_KEY + " WHERE tenant_id = ? ORDER BY key_id", (tenant_id,))
        return [admin_key_of(r) for r in rows]

    async def delete_admin_key(self, tenant_id: TenantId, key_id: str) -> bool:
        return await self._write_config(
            lambda conn: writes.delete_admin_key(conn, tenant_id, key_id)
        )

    # --- clients ------------------------------------------------------------------------------

    async def get_client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None:
        rows = self._rows(
            _CLIENT + " WHERE tenant_id = ? AND client_id = ?", (tenant_id, client_id)
        )
        return client_of(rows[0]) if rows else None

    async def list_clients(self, tenant_id: TenantId) -> list[Client]:
        rows = self._rows(_CLIENT + " WHERE tenant_id = ? ORDER BY client_id", (tenant_id,))
        return [client_of(r) for r in rows]

    async def put_client(self, client: Client) -> None:
        await self._write_config(lambda conn: writes.put_client(conn, client))

    async def delete_client(self, tenant_id: TenantId, client_id: ClientId) -> bool:
        return await self._write_config(
            lambda conn: writes.delete_client(conn, tenant_id, client_id)
        )

    # --- tenant plugins -------------------------------------------------------------------

    async def add_plugin_version(self, plugin: PluginVersion) -> PluginVersion:
        return await self._write_config(lambda conn: plugins.add_version(conn, plugin))

    async def get_plugin_version(
        self, tenant_id: TenantId, name: str, version: int | None = None
    ) -> PluginVersion | None:
        if version is None:
            rows = self._rows(plugins.GET_CURRENT, (tenant_id, name))
        else:
            rows = self._rows(plugins.GET_VERSION, (tenant_id, name, version))
        return plugin_of(rows[0]) if rows else None

    async def list_plugin_versions(self, tenant_id: TenantId, name: str) -> list[PluginVersion]:
        return [plugin_of(r) for r in self._rows(plugins.LIST_VERSIONS, (tenant_id, name))]

    async def list_plugins(self, tenant_id: TenantId) -> list[PluginVersion]:
        return [plugin_of(r) for r in self._rows(plugins.LIST_CURRENT, (tenant_id,))]

    async def set_current_plugin_version(
        self, tenant_id: TenantId, name: str, version: int
    ) -> bool:
        return await self._write_config(
            lambda conn: plugins.set_current(conn, tenant_id, name, version)
        )

    async def delete_plugin(self, tenant_id: TenantId, name: str) -> bool:
        return await self._write_config(lambda conn: plugins.delete(conn, tenant_id, name))

    # --- credentials ------------------------------------------------------------------------------

    async def register_credentials(
        self, tenant_id: TenantId, credentials: Sequence[Credential]
    ) -> RegistrationOutcome:
        credentials = tuple(credentials)
        return await self._write(
            lambda conn: writes.register_credentials(
                conn, tenant_id, credentials, int(time.time())
            ),
            heavy=len(credentials) > HEAVY_REGISTRATION,
        )

    async def find_credential(
        self, tenant_id: TenantId, token_hash: TokenHash
    ) -> Credential | None:
        rows = self._rows(sweeps.FIND_CREDENTIAL, (tenant_id, token_hash))
        if not rows:
            return None
        found = credential_of(rows[0])
        swept_at, cause = rows[0][13:]
        if swept_at is None:
            return found
        return replace(found, revoked_at=swept_at, revoked_cause=cause)

    async def count_token_hashes(
        self, tenant_id: TenantId, length: int, prefix: bytes, exp_from: int
    ) -> int:
        low, high = hash_range(length, prefix)
        rows = self._rows(COUNT_TOKEN_HASHES, (tenant_id, low, high, length, exp_from))
        count: int = rows[0][0]
        return count

    # --- grants and subjects ------------------------------------------------------------------

    async def put_grant(self, grant: Grant) -> None:
        await self._write(lambda conn: writes.put_grant(conn, grant))

    async def get_grant(self, tenant_id: TenantId, grant_id: str) -> Grant | None:
        rows = self._rows(
            "SELECT tenant_id, grant_id, client_id, sub, scope, updated_at FROM grants"
            " WHERE tenant_id = ? AND grant_id = ?",
            (tenant_id, grant_id),
        )
        return grant_of(rows[0]) if rows else None

    async def subject_clients(self, tenant_id: TenantId, sub: str, now: int) -> list[SubjectClient]:
        rows = self._rows(SUBJECT_CLIENTS, {"tenant": tenant_id, "sub": sub, "now": now})
        return [
            SubjectClient(client_id, credentials, grants) for client_id, credentials, grants in rows
        ]

    async def subject_sessions(self, tenant_id: TenantId, sub: str, now: int) -> list[str]:
        rows = self._rows(subjects.SUBJECT_SESSIONS, {"tenant": tenant_id, "sub": sub, "now": now})
        return [session for (session,) in rows]

    # --- revocation -----------------------------------------------------------------------

    async def apply_revocation(
        self, tenant_id: TenantId, plan: RevocationPlan
    ) -> RevocationOutcome:
        if not plan.sweeps:
            return await self._write_events(
                tenant_id, lambda conn: revocation.apply_plan(conn, tenant_id, plan), _itself
            )
        sweep_id, outcome = await self._write_events(
            tenant_id,
            lambda conn: sweeps.start(conn, tenant_id, plan, int(time.time()), SWEEP_CHUNK),
            _second,
            heavy=True,
        )
        if outcome is None:
            assert sweep_id is not None  # a sweep that goes on has an id
            outcome = await self._sweep(tenant_id, sweep_id)
        return outcome

    async def _sweep(self, tenant_id: TenantId, sweep_id: int) -> RevocationOutcome:
        """Advance the sweep chunk by chunk, each chunk its own write, until it is done."""
        while True:
            outcome = await self._write_events(
                tenant_id,
                lambda conn: sweeps.step(conn, sweep_id, int(time.time()), SWEEP_CHUNK),
                _itself,
                heavy=True,
            )
            if outcome is not None:
                return outcome

    async def finish_sweeps(self, idle_s: int) -> int:
        touched_before = int(time.time()) - idle_s
        pending = self._rows(sweeps.IDLE, (touched_before,))
        for sweep_id, tenant_id in pending:
            await self._sweep(tenant_id, sweep_id)
        return len(pending)

    async def ended_session(
        self, tenant_id: TenantId, device_session_id: str, *, tokens: bool = False
    ) -> int | None:
        rows = self._rows(
            "SELECT ended_at, tokens_end FROM ended_sessions"
            " WHERE tenant_id = ? AND device_session_id = ?",
            (tenant_id, device_session_id),
        )
        if not rows or (tokens and not rows[0][1]):
            return None
        ended_at: int = rows[0][0]
        return ended_at

    async def not_before(
        self, tenant_id: TenantId, marks: Sequence[tuple[MarkKind, str]]
    ) -> int | None:
        if not marks:
            return None
        params: list[Any] = []
        for kind, key in marks:
            params += [tenant_id, kind.value, key]
        rows = self._rows(not_before_query(len(marks)), params)
        at: int | None = rows[0][0]
        return at

    async def is_denied(self, tenant_id: TenantId, key: str) -> bool:
        rows = self._rows("SELECT 1 FROM denied WHERE tenant_id = ? AND key = ?", (tenant_id, key))
        return bool(rows)

    # --- client assertions ----------------------------------------------------------------

    async def use_assertion_id(
        self, tenant_id: TenantId, client_id: ClientId, jti: str, exp: int, now: int
    ) -> bool:
        return await self._write(
            lambda conn: writes.use_assertion_id(conn, tenant_id, client_id, jti, exp, now)
        )

    # --- failed client authentication ------------------------------------------------------

    async def auth_failures(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int
    ) -> list[int]:
        if not keys:
            return []
        rows = self._rows(auth_failures.counts_query(len(keys)), (tenant_id, window_start, *keys))
        counts = dict(rows)
        return [counts.get(key, 0) for key in keys]

    async def record_auth_failure(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int, window_end: int
    ) -> None:
        keys = tuple(keys)
        await self._write(
            lambda conn: auth_failures.record(conn, tenant_id, keys, window_start, window_end)
        )
        self._failure_stamps.bump(tenant_id, keys)

    def auth_failures_stamp(self, tenant_id: TenantId, key: str) -> int | None:
        return self._failure_stamps.read(tenant_id, key)

    # --- events -------------------------------------------------------------------------------

    async def list_events(self, tenant_id: TenantId, after: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        return [event_of(r) for r in self._rows(LIST_EVENTS, (tenant_id, after, limit))]

    def events_stamp(self, tenant_id: TenantId) -> int | None:
        return self._event_stamps.read(tenant_id)

    def events_generation(self) -> int | None:
        return self._event_stamps.generation()

    async def last_event_id(self, tenant_id: TenantId) -> int:
        rows = self._rows("SELECT last_id FROM event_seq WHERE tenant_id = ?", (tenant_id,))
        return int(rows[0][0]) if rows else 0

    # --- propagation: the tenant's own signing keys ------------------------------------

    async def list_signing_keys(self, tenant_id: TenantId) -> list[SigningKey]:
        return [signing_keys.key_of(r) for r in self._rows(signing_keys.LIST, (tenant_id,))]

    async def add_signing_key(self, key: SigningKey, retire_current_at: int | None) -> SigningKey:
        return await self._write_config(lambda conn: signing_keys.add(conn, key, retire_current_at))

    async def drop_retired_signing_keys(self, tenant_id: TenantId, before: int) -> int:
        return await self._write_config(
            lambda conn: signing_keys.drop_retired(conn, tenant_id, before)
        )

    async def reseal_signing_key(self, key: SigningKey, sealed_private: bytes) -> bool:
        return await self._write_config(lambda conn: signing_keys.reseal(conn, key, sealed_private))

    # --- propagation: receivers of Security Event Tokens --------------------------------

    async def put_receiver(
        self,
        receiver: Receiver,
        cursor: int,
        *,
        limit: int | None = None,
        resume: bool = True,
    ) -> tuple[Receiver, bool]:
        return await self._write_config(
            lambda conn: receivers.put(conn, receiver, cursor, limit, resume)
        )

    async def get_receiver(self, tenant_id: TenantId, receiver_id: str) -> Receiver | None:
        rows = self._rows(receivers.GET, (tenant_id, receiver_id))
        return receivers.receiver_of(rows[0]) if rows else None

    async def list_receivers(self, tenant_id: TenantId | None = None) -> list[Receiver]:
        if tenant_id is None:
            rows = self._rows(receivers.LIST_ALL, ())
        else:
            rows = self._rows(receivers.LIST_OF_TENANT, (tenant_id,))
        return [receivers.receiver_of(r) for r in rows]

    async def delete_receiver(self, tenant_id: TenantId, receiver_id: str) -> bool:
        return await self._write_config(lambda conn: receivers.delete(conn, tenant_id, receiver_id))

    async def get_receiver_state(
        self, tenant_id: TenantId, receiver_id: str
    ) -> ReceiverState | None:
        rows = self._rows(receivers.GET_STATE, (tenant_id, receiver_id))
        return receivers.state_of(rows[0]) if rows else None

    async def claim_receiver(
        self, tenant_id: TenantId, receiver_id: str, owner: str, now: int, until: int
    ) -> ReceiverState | None:
        return await self._write(
            lambda conn: receivers.claim(conn, tenant_id, receiver_id, owner, now, until)
        )

    async def record_delivery(
        self,
        state: ReceiverState,
        owner: str,
        log: Sequence[DeliveryAttempt],
        keep_log: int,
    ) -> bool:
        log = tuple(log)
        return await self._write(lambda conn: receivers.record(conn, state, owner, log, keep_log))

    async def delivery_log(
        self, tenant_id: TenantId, receiver_id: str, limit: int
    ) -> list[DeliveryAttempt]:
        if limit <= 0:
            return []
        rows = self._rows(receivers.LOG, (tenant_id, receiver_id, limit))
        return [receivers.attempt_of(r) for r in rows]

    # --- Token Status List -------------------------------------------------------------

    async def allocate_status_indexes(self, tenant_id: TenantId, count: int) -> int:
        return await self._write(lambda conn: status_list.allocate(conn, tenant_id, count))

    async def revoked_status_indexes(self, tenant_id: TenantId, low: int, high: int) -> list[int]:
        return self._read(lambda conn: status_list.revoked(conn, tenant_id, low, high))

    async def allocated_status_indexes(self, tenant_id: TenantId) -> int:
        return self._read(lambda conn: status_list.allocated(conn, tenant_id))

    async def stored_status_indexes(
        self, tenant_id: TenantId, token_hashes: Sequence[TokenHash]
    ) -> dict[TokenHash, int]:
        hashes = tuple(token_hashes)
        return self._read(lambda conn: status_list.stored(conn, tenant_id, hashes))

    # --- housekeeping ---------------------------------------------------------------------

    async def purge_expired(self, before: int) -> int:
        total = 0
        while True:
            dropped = await self._write(
                lambda conn: writes.purge_expired(conn, before, PURGE_CHUNK), heavy=True
            )
            total += sum(dropped)
            if max(dropped) < PURGE_CHUNK:
                return total

    # --- retention ------------------------------------------------------------------------

    async def purge_events(self, tenant_id: TenantId, before: int, limit: int) -> int:
        return await self._write(
            lambda conn: retention.purge_events(conn, tenant_id, before, limit), heavy=True
        )

    async def purge_marks(self, tenant_id: TenantId, set_before: int, limit: int) -> int:
        return await self._write(
            lambda conn: retention.purge_marks(conn, tenant_id, set_before, limit), heavy=True
        )

    async def purge_ended_sessions(
        self, tenant_id: TenantId, ended_before: int, now: int, limit: int
    ) -> int:
        return await self._write(
            lambda conn: retention.purge_ended_sessions(conn, tenant_id, ended_before, now, limit),
            heavy=True,
        )

    async def retention_horizon(self, tenant_id: TenantId) -> int | None:
        return self._read(lambda conn: horizon.read(conn, tenant_id))
