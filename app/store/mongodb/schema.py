"""Collections and indexes, created idempotently at ``open()``.

The tenant id leads every index, so each query names one tenant and stays within its
range. Two exceptions are inherent: issuers are unique across tenants, and a TTL index
must be on a single date field. Indexes are named, so a changed definition fails loudly
(``IndexOptionsConflict``) instead of creating a second index beside the old one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, OperationFailure

Document = dict[str, Any]

log = logging.getLogger(__name__)

TENANTS = "tenants"
ISSUERS = "issuers"
ADMIN_KEYS = "admin_keys"
CLIENTS = "clients"
PLUGINS = "plugin_versions"
CREDENTIALS = "credentials"
GRANTS = "grants"
SESSIONS = "ended_sessions"
SESSION_TOKENS_ENDED: Document = {"tokens_end": {"$ne": False}}
"""An ended session whose tokens ended with it; sessions ended before the field existed
have none, and were taken as such."""
MARKS = "not_before_marks"
DENY_LIST = "deny_list"
ASSERTION_IDS = "assertion_ids"
"""The ``jti`` of every client assertion (RFC 7523) until its ``exp``: used once only."""
AUTH_FAILURES = "auth_failures"
"""Failed client authentications per key and fixed window, until the window's end."""
EVENTS = "events"
COUNTERS = "counters"
DELETED_TENANTS = "deleted_tenants"
"""Tenants whose configuration is gone and whose data is still being deleted."""
SWEEPS = "sweeps"
"""Pending sweeps (``app.store.sweeps``): inserted when committed, deleted when done.
Every instance keeps them in memory (``pending_sweeps``), so it is followed like the
configuration; a sweep's progress is a counter document, which is not."""

SIGNING_KEYS = "signing_keys"
"""The tenant's own signing keys (``app.propagation``): configuration."""
RECEIVERS = "receivers"
"""Receivers of Security Event Tokens: configuration."""
RECEIVER_STATE = "receiver_state"
"""Each receiver's delivery state (cursor, lease, failures): written on every delivery."""
DELIVERY_LOG = "delivery_log"
"""Each receiver's latest delivery attempts."""

CONFIG_COLLECTIONS = (
    TENANTS,
    ISSUERS,
    CLIENTS,
    ADMIN_KEYS,
    PLUGINS,
    SWEEPS,
    SIGNING_KEYS,
    RECEIVERS,
)
"""What ``config_version()`` follows: a change here must reach every instance's cache."""

DATA_COLLECTIONS = (
    CREDENTIALS,
    GRANTS,
    SESSIONS,
    MARKS,
    DENY_LIST,
    ASSERTION_IDS,
    AUTH_FAILURES,
    EVENTS,
    COUNTERS,
    RECEIVER_STATE,
    DELIVERY_LOG,
)
"""A tenant's data: deleted in chunks after its configuration."""

EXPIRE_AT = "expire_at"
"""BSON date = ``exp`` + retention: the TTL monitor drops the document after it."""

NAMESPACE_EXISTS = 48


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    keys: tuple[str, ...]
    unique: bool = False
    ttl: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        options: dict[str, Any] = {"name": self.name, **self.options}
        if self.unique:
            options["unique"] = True
        if self.ttl:
            options["expireAfterSeconds"] = 0
        return IndexModel([(key, ASCENDING) for key in self.keys], **options)


INDEXES: dict[str, tuple[Index, ...]] = {
    TENANTS: (Index("tenant", ("tenant_id",), unique=True),),
    ISSUERS: (
        Index("issuer", ("issuer",), unique=True),
        Index("tenant_issuer", ("tenant_id", "issuer")),
    ),
    ADMIN_KEYS: (Index("tenant_key", ("tenant_id", "key_id"), unique=True),),
    CLIENTS: (Index("tenant_client", ("tenant_id", "client_id"), unique=True),),
    PLUGINS: (
        Index("tenant_plugin_version", ("tenant_id", "name", "version"), unique=True),
        # The server keeps at most one current version per name. Queries that say
        # ``current: true`` use it: the current version of a name, and the tenant's
        # current versions in name order.
        Index(
            "tenant_current_plugin",
            ("tenant_id", "name"),
            unique=True,
            options={"partialFilterExpression": {"current": True}},
        ),
    ),
    CREDENTIALS: (
        Index("tenant_token", ("tenant_id", "token_hash"), unique=True),
        Index("tenant_grant", ("tenant_id", "grant_id")),
        # (tenant, sub, client) serves both ByClientSubject and subject_clients();
        # (tenant, client) serves ByClient.
        Index("tenant_sub_client", ("tenant_id", "sub", "client_id")),
        Index("tenant_client", ("tenant_id", "client_id")),
        Index("tenant_session", ("tenant_id", "device_session_id")),
        Index("ttl", (EXPIRE_AT,), ttl=True),
        # Token Status List: the tenant's revoked indexes in a range.
        Index(
            "tenant_status",
            ("tenant_id", "status_idx"),
            options={"partialFilterExpression": {"status_idx": {"$exists": True}}},
        ),
    ),
    GRANTS: (
        Index("tenant_grant", ("tenant_id", "grant_id"), unique=True),
        Index("tenant_sub_client", ("tenant_id", "sub", "client_id")),
    ),
    # The ``*_time`` indexes serve retention (``retention.py``): each tenant's oldest
    # sessions, marks and events first. A TTL index cannot read a tenant's settings.
    SESSIONS: (
        Index("tenant_session", ("tenant_id", "device_session_id"), unique=True),
        Index("tenant_ended_time", ("tenant_id", "ended_at")),
    ),
    MARKS: (
        Index("tenant_mark", ("tenant_id", "kind", "key"), unique=True),
        Index("tenant_mark_time", ("tenant_id", "at")),
    ),
    DENY_LIST: (
        Index("tenant_key", ("tenant_id", "key"), unique=True),
        Index("ttl", (EXPIRE_AT,), ttl=True),
    ),
    ASSERTION_IDS: (
        Index("tenant_client_jti", ("tenant_id", "client_id", "jti"), unique=True),
        Index("ttl", (EXPIRE_AT,), ttl=True),
    ),
    AUTH_FAILURES: (
        Index("tenant_key_window", ("tenant_id", "key", "window"), unique=True),
        Index("ttl", (EXPIRE_AT,), ttl=True),
    ),
    EVENTS: (
        Index("tenant_event", ("tenant_id", "id"), unique=True),
        Index("tenant_event_time", ("tenant_id", "time")),
    ),
    COUNTERS: (Index("tenant_counter", ("tenant_id", "name"), unique=True),),
    DELETED_TENANTS: (Index("tenant", ("tenant_id",), unique=True),),
    SWEEPS: (
        Index("tenant", ("tenant_id",)),
        Index("tenant_sweep", ("tenant_id", "id"), unique=True),
    ),
    SIGNING_KEYS: (Index("tenant_kid", ("tenant_id", "kid"), unique=True),),
    RECEIVERS: (Index("tenant_receiver", ("tenant_id", "receiver_id"), unique=True),),
    RECEIVER_STATE: (Index("tenant_receiver", ("tenant_id", "receiver_id"), unique=True),),
    DELIVERY_LOG: (Index("tenant_receiver_seq", ("tenant_id", "receiver_id", "seq"), unique=True),),
}


async def ensure_schema(db: AsyncDatabase[Document]) -> None:
    """Create missing collections and indexes; leave existing ones alone.

    Collections are created up front: a transaction's first write must not have to.
    """
    existing = set(await db.list_collection_names())
    for name, indexes in INDEXES.items():
        if name not in existing:
            try:
                await db.create_collection(name)
            except CollectionInvalid:
                pass  # another instance created it first
            except OperationFailure as exc:
                if exc.code != NAMESPACE_EXISTS:
                    raise
        await db[name].create_indexes([index.model() for index in indexes])
    for name in CONFIG_COLLECTIONS:
        await _keep_pre_images(db, name)


async def _keep_pre_images(db: AsyncDatabase[Document], name: str) -> None:
    """Changes to configuration carry the document as it was (``watcher``): a delete
    names its tenant. Without the right to change it, every instance's caches reload
    all tenants on such a change instead of one."""
    try:
        await db.command("collMod", name, changeStreamPreAndPostImages={"enabled": True})
    except OperationFailure as exc:
        log.warning("pre-images not enabled on %s: %s", name, exc)
