"""The store contract: what every backend (embedded SQLite, MongoDB) provides.

Every method takes the tenant id and every query is scoped by it. Methods raise
``app.errors.StoreUnavailable`` when the backend cannot be reached, ``Conflict`` on a
uniqueness clash, and never return partial writes: each write method is one transaction.
Revocation state is always read from the store, never from a cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
from app.types import ClientId, TenantId, TokenHash

DELETION_PENDING = "the tenant is being deleted; its id is free again once its data is gone"
"""``Conflict`` message of ``put_tenant`` while a deleted tenant of that id has data."""


class Store(Protocol):
    name: str
    """``sqlite`` or ``mongodb``, for logs, metrics and readiness."""

    async def open(self) -> None:
        """Connect, create or migrate the schema and indexes (idempotent)."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers now."""

    async def config_version(self) -> int:
        """A number that changes whenever tenants, clients or admin keys change.

        As cheap as the backend can make it: caches compare it on every request.
        """

    async def config_changes_since(self, version: int) -> tuple[int, frozenset[TenantId]] | None:
        """The tenants whose configuration changed after ``version`` (a value
        ``config_version()`` returned), and the version that answer is complete up to
        (at least ``version``), so a cache can reload just those tenants.

        None when the store cannot say: its log does not reach back that far, or a change
        concerned no tenant it could name (a lost change stream, a periodic refresh):
        reload everything.
        """

    # --- tenants ---------------------------------------------------------------------
    async def list_tenants(self) -> list[Tenant]: ...

    async def get_tenant(self, tenant_id: TenantId) -> Tenant | None: ...

    async def put_tenant(self, tenant: Tenant, issuers: Sequence[str]) -> Tenant:
        """Create or replace a tenant's settings, keeping ``key_salt`` and ``created_at``
        of an existing one (its clients and credentials stay).

        ``issuers`` are the normalised issuer and aliases; raise ``Conflict`` when one
        belongs to another tenant, or while a deleted tenant of this id still has data.
        Returns the stored tenant.
        """

    async def delete_tenant(self, tenant_id: TenantId) -> bool:
        """Delete the tenant and all its data. False when there was none.

        The configuration (settings, issuers, admin keys, clients, plugins) goes at once, in one
        transaction; the data (credentials, grants, events, …) then in chunks, so that a
        large tenant neither holds up other tenants' writes nor outgrows a transaction.
        Until its data is gone the tenant id cannot be used again (``put_tenant`` raises
        ``Conflict``); ``finish_deletions`` completes a deletion that was interrupted.
        """

    async def finish_deletions(self) -> int:
        """Finish deleting the data of deleted tenants; how many tenants there were."""

    # --- tenant admin keys ---------------------------------------------------------------
    async def add_admin_key(self, key: AdminKey) -> None: ...

    async def get_admin_key(self, tenant_id: TenantId, key_id: str) -> AdminKey | None: ...

    async def list_admin_keys(self, tenant_id: TenantId) -> list[AdminKey]: ...

    async def delete_admin_key(self, tenant_id: TenantId, key_id: str) -> bool: ...

    # --- clients ------------------------------------------------------------------------
    async def get_client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None: ...

    async def list_clients(self, tenant_id: TenantId) -> list[Client]: ...

    async def put_client(self, client: Client) -> None:
        """Create or replace (keeps ``created_at`` of an existing client)."""

    async def delete_client(self, tenant_id: TenantId, client_id: ClientId) -> bool: ...

    # --- tenant plugins ---------------------------------------------------------------
    # Uploaded plugin code is configuration: every write below moves ``config_version``
    # so that every worker and instance runs the new code from its next request.

    async def add_plugin_version(self, plugin: PluginVersion) -> PluginVersion:
        """Keep a new version of ``plugin.name`` and make it the current one.

        Its number is one more than the highest ever kept for that name in the tenant (1
        for the first); ``plugin.version`` and ``plugin.current`` are ignored. Returns the
        stored version. Raises ``NotFound`` when the tenant does not exist.
        """

    async def get_plugin_version(
        self, tenant_id: TenantId, name: str, version: int | None = None
    ) -> PluginVersion | None:
        """That version, or the current one when ``version`` is None; None if absent."""

    async def list_plugin_versions(self, tenant_id: TenantId, name: str) -> list[PluginVersion]:
        """Every kept version of ``name``, oldest first; empty when there is no such plugin."""

    async def list_plugins(self, tenant_id: TenantId) -> list[PluginVersion]:
        """The current version of each of the tenant's plugins, by name."""

    async def set_current_plugin_version(
        self, tenant_id: TenantId, name: str, version: int
    ) -> bool:
        """Make a kept version current (rollback); False when there is no such version."""

    async def delete_plugin(self, tenant_id: TenantId, name: str) -> bool:
        """Remove every version of ``name``; False when there was none."""

    # --- credentials ----------------------------------------------------------------------
    async def register_credentials(
        self, tenant_id: TenantId, credentials: Sequence[Credential]
    ) -> RegistrationOutcome:
        """All or none. A token hash already stored with the same fields (``same_issue``),
        or repeated in the batch, is a duplicate; with other fields it raises ``Conflict``.
        A revoked credential stays revoked.
        """

    async def find_credential(
        self, tenant_id: TenantId, token_hash: TokenHash
    ) -> Credential | None: ...

    async def count_token_hashes(
        self, tenant_id: TenantId, length: int, prefix: bytes, exp_from: int
    ) -> int:
        """How many of the tenant's credentials with ``exp`` at or after ``exp_from``
        (revoked or not) are stored under a token hash of ``length`` bytes that begins
        with ``prefix``: what is left under one master key (``app.keys`` tags hashes by
        key version). For key rotation, not the request path: a range of the hash index.
        """

    # --- grants and subjects -----------------------------------------------------------
    async def put_grant(self, grant: Grant) -> None: ...

    async def get_grant(self, tenant_id: TenantId, grant_id: str) -> Grant | None: ...

    async def subject_clients(self, tenant_id: TenantId, sub: str, now: int) -> list[SubjectClient]:
        """Clients with a grant record or a live credential for ``sub``, by client_id."""

    async def subject_sessions(self, tenant_id: TenantId, sub: str, now: int) -> list[str]:
        """The device sessions of ``sub``'s credentials that expire after ``now`` (revoked
        or not) and have not ended, by id: what a Global Token Revocation ends."""

    # --- revocation ------------------------------------------------------------------
    async def apply_revocation(
        self, tenant_id: TenantId, plan: RevocationPlan
    ) -> RevocationOutcome:
        """Apply the whole plan in one durable transaction, or nothing.

        Credentials matched by the selectors that are live at ``plan.revoked_at`` are
        marked revoked (``revoked_at``, ``revoked_cause = plan.cause``); their number is
        the outcome's ``count`` and the ``count`` of every event draft whose count is
        ``None``. See ``RevocationPlan`` for idempotence.

        A plan with sweeps (``RevocationPlan.sweeps``) commits them in that transaction
        and every read from then on sees what they cover as revoked; their credentials'
        rows are then written in chunks, and the events appended once they are,
        before this returns (``app.store.sweeps``). A credential is live here only if no
        pending sweep covers it.
        """

    async def finish_sweeps(self, idle_s: int) -> int:
        """Finish the sweeps that no process has advanced for ``idle_s`` seconds (the
        process that committed them stopped): how many there were."""

    async def ended_session(
        self, tenant_id: TenantId, device_session_id: str, *, tokens: bool = False
    ) -> int | None:
        """When the session was ended, or None; ``tokens``: only an end that took the
        session's tokens with it counts (``RevocationPlan.session_tokens_end``)."""

    async def not_before(
        self, tenant_id: TenantId, marks: Sequence[tuple[MarkKind, str]]
    ) -> int | None:
        """The latest of the given not-before marks, or None when none is set."""

    async def is_denied(self, tenant_id: TenantId, key: str) -> bool: ...

    # --- client assertions (RFC 7523) -------------------------------------------------
    async def use_assertion_id(
        self, tenant_id: TenantId, client_id: ClientId, jti: str, exp: int, now: int
    ) -> bool:
        """Record that a client assertion with this ``jti`` was used; True the first time.

        False when (tenant, client, ``jti``) is recorded with an ``exp`` at or after
        ``now``: the assertion is being replayed. A record whose ``exp`` is before ``now``
        is taken over (its assertion can no longer be accepted anyway). One atomic write
        on a unique key, so that of two instances presented the same assertion at once
        exactly one gets True. Records are dropped by ``purge_expired`` and with their
        tenant; the tenant's existence is not checked (a record is useless after ``exp``).
        """

    # --- failed client authentication (contract section 7) ------------------------------
    async def auth_failures(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int
    ) -> list[int]:
        """How many failures ``record_auth_failure`` counted for each of ``keys`` in the
        window that starts at ``window_start``, in the order of ``keys`` (0 for none).

        One read for all the keys, on every backend: it is on the path of every request
        that authenticates a client.
        """

    async def record_auth_failure(
        self, tenant_id: TenantId, keys: Sequence[str], window_start: int, window_end: int
    ) -> None:
        """Count one failure for each of ``keys`` in the window that starts at
        ``window_start``: an atomic increment in the store, so that no failure is lost to
        a concurrent one on any worker or instance.

        Counts are dropped by ``purge_expired`` once ``window_end`` is before its
        ``before`` (on MongoDB also by a TTL index at ``window_end``) and with their
        tenant; the tenant's existence is not checked (a count is useless after its
        window).
        """

    def auth_failures_stamp(self, tenant_id: TenantId, key: str) -> int | None:
        """A number, read without a query, that has moved by the time a count of ``key``
        read as 0 is 0 no longer, whichever process sharing the store counted the
        failure: on SQLite at once (shared memory every worker writes after its commit);
        on MongoDB when the count's insert reaches this instance's change stream (about
        when the writer's acknowledgement reaches the writer). None while the backend
        cannot tell. While it stays the same, a count of 0 read after it was taken is
        still 0, so the caller need not read again.
        """

    # --- events ----------------------------------------------------------------------------
    async def list_events(self, tenant_id: TenantId, after: int, limit: int) -> list[Event]:
        """Events with ``id > after``, in id order. Ids grow in commit order per tenant."""

    def events_stamp(self, tenant_id: TenantId) -> int | None:
        """A number, read without a query, that moves once new events of the tenant are
        committed by any process sharing the store (SQLite: shared memory every worker
        writes after its commit; MongoDB: this instance's change stream on the events).
        None while the backend cannot tell: callers then read the store, bounded."""

    def events_generation(self) -> int | None:
        """Like ``events_stamp`` for every tenant at once: it moves whenever any tenant's
        events are committed, so an idle waiter checks one number, not one per tenant."""

    async def last_event_id(self, tenant_id: TenantId) -> int:
        """The id of the tenant's latest event (0 when none ever was)."""

    # --- propagation: the tenant's own signing keys (configuration) ----------------------
    async def list_signing_keys(self, tenant_id: TenantId) -> list[SigningKey]:
        """Every kept key, the current one (``retire_at`` None) first, then newest first."""

    async def add_signing_key(self, key: SigningKey, retire_current_at: int | None) -> SigningKey:
        """Make ``key`` the tenant's current key and return the current key.

        ``retire_current_at`` None: only if the tenant has no current key (first use; of
        two processes racing, one key wins and both get it). Otherwise a rotation: the
        current key gets that ``retire_at`` in the same transaction. Moves
        ``config_version``; ``NotFound`` when the tenant does not exist."""

    async def drop_retired_signing_keys(self, tenant_id: TenantId, before: int) -> int:
        """Drop keys whose ``retire_at`` is before ``before``: how many."""

    async def reseal_signing_key(self, key: SigningKey, sealed_private: bytes) -> bool:
        """Store the private key sealed again (a master key rotation), only while the
        stored seal is still ``key.sealed_private``: False when it changed or the key is
        gone. Moves ``config_version``."""

    # --- propagation: receivers of Security Event Tokens ---------------------------------
    async def put_receiver(
        self,
        receiver: Receiver,
        cursor: int,
        *,
        limit: int | None = None,
        resume: bool = True,
    ) -> tuple[Receiver, bool]:
        """Create or replace a receiver (keeps ``created_at``); True when created.

        A new receiver's delivery state starts at ``cursor`` (the events after it are its
        queue), with an empty log; ``Conflict`` when the tenant has ``limit`` receivers
        already. Replacing keeps the cursor, the counters and the log; with ``resume``
        it makes a paused receiver active again, clears its failures and its back-off,
        and drops the delivery lease (a delivery in flight then records nothing: its
        ``record_delivery`` is False, and the next claim reads the new configuration).
        ``resume`` False leaves the state alone (re-sealing after a master key
        rotation). Moves ``config_version``; ``NotFound`` without the tenant."""

    async def get_receiver(self, tenant_id: TenantId, receiver_id: str) -> Receiver | None: ...

    async def list_receivers(self, tenant_id: TenantId | None = None) -> list[Receiver]:
        """The tenant's receivers, or every tenant's (None), by tenant and id."""

    async def delete_receiver(self, tenant_id: TenantId, receiver_id: str) -> bool:
        """The receiver, its state and its delivery log; False when there was none."""

    async def get_receiver_state(
        self, tenant_id: TenantId, receiver_id: str
    ) -> ReceiverState | None: ...

    async def claim_receiver(
        self, tenant_id: TenantId, receiver_id: str, owner: str, now: int, until: int
    ) -> ReceiverState | None:
        """Take or extend the delivery lease: the state when ``owner`` holds it until
        ``until`` (it was free, expired at ``now`` (``lease_until <= now``), or already
        ``owner``'s); None when another owner holds it or the receiver is gone. One
        atomic conditional write, exclusive across processes and instances."""

    async def record_delivery(
        self,
        state: ReceiverState,
        owner: str,
        log: Sequence[DeliveryAttempt],
        keep_log: int,
    ) -> bool:
        """Store ``state`` (cursor, status, failures, counters) and append ``log``,
        keeping the receiver's latest ``keep_log`` entries, in one transaction, only
        while ``owner`` holds the lease (``owner`` "" : no lease needed, for poll
        acknowledgements and admin actions). ``owner`` holds the lease while
        ``lease_owner`` is still ``owner``: an expired lease that nobody took over still
        counts (taking it over changes the owner). False when the lease was lost or the
        receiver is gone (nothing written). The cursor never moves back (the stored one
        is the greater); the lease itself is left as it is. Log entries are numbered in
        the order given, so ``log`` lists a batch's attempts oldest first."""

    async def delivery_log(
        self, tenant_id: TenantId, receiver_id: str, limit: int
    ) -> list[DeliveryAttempt]:
        """The receiver's latest log entries, newest first."""

    # --- propagation: Token Status List ---------------------------------------------------
    async def allocate_status_indexes(self, tenant_id: TenantId, count: int) -> int:
        """Reserve ``count`` consecutive status list indexes for the tenant: the first.
        Indexes are never handed out twice. ``NotFound`` without the tenant."""

    async def revoked_status_indexes(self, tenant_id: TenantId, low: int, high: int) -> list[int]:
        """Status indexes in [``low``, ``high``) of the tenant's revoked credentials
        (those a pending sweep covers included), ascending."""

    async def allocated_status_indexes(self, tenant_id: TenantId) -> int:
        """How many status indexes the tenant was ever handed (0 when none)."""

    async def stored_status_indexes(
        self, tenant_id: TenantId, token_hashes: Sequence[TokenHash]
    ) -> dict[TokenHash, int]:
        """The status index stored with each of these credentials that has one."""

    # --- housekeeping ------------------------------------------------------------------
    async def purge_expired(self, before: int) -> int:
        """Drop credentials, deny entries, assertion ids and failure counts whose ``exp``
        (a count's: its window's end) is before ``before``.

        Called with a retention margin: nothing is dropped while it could be presented.
        """

    # --- retention (``app.retention`` decides the cut-offs) -----------------------------
    # Each call drops at most ``limit`` rows of one tenant, oldest first, in one bounded
    # write, and none only when none is due (it may drop fewer before then). The caller
    # calls again until a call drops none, so a long purge never holds up the tenant's
    # revocations for long.

    async def purge_events(self, tenant_id: TenantId, before: int, limit: int) -> int:
        """Drop the tenant's events whose ``time`` is before ``before``: how many. Ids
        are never reused, so the feed's cursors stay valid."""

    async def purge_marks(self, tenant_id: TenantId, set_before: int, limit: int) -> int:
        """Drop the tenant's not-before marks whose time (``at``, the latest revocation
        that set it) is before ``set_before``: how many. A mark set again meanwhile is
        kept."""

    async def purge_ended_sessions(
        self, tenant_id: TenantId, ended_before: int, now: int, limit: int
    ) -> int:
        """Drop the tenant's ended sessions that ended before ``ended_before`` and have
        no stored credential that is neither revoked nor expired at ``now`` (it would
        become active again): how many."""

    async def retention_horizon(self, tenant_id: TenantId) -> int | None:
        """The greatest cut-off with which the tenant's marks or ended sessions were
        purged (``purge_marks`` and ``purge_ended_sessions`` advance it with what they
        drop, never back); None: none was. A credential registered later with an
        ``iat`` before it and an ``exp`` still ahead is stored revoked
        (``app.store.late_registration``)."""
