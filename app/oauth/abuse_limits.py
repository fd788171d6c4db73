"""Limits on failed client authentication (contract section 7).

Failures are counted per (tenant, client, source address) and per (tenant, source
address), in fixed windows of one minute (aligned on the clock's minutes), in the store:
every worker and every instance sharing the store counts into the same numbers.
``limit_failures`` wraps the endpoints' client authentication, ``pre_auth`` plugins
included. Over either limit it answers ``429`` before any credential is checked, so a
guess is worth nothing once the limit is reached, right or wrong; a ``401
invalid_client`` of the wrapped step counts one failure under each key. A success counts
nothing and resets nothing, and a ``429`` counts nothing: the lock ends with its window.

The per-client key carries the address, so failures from one address never lock the
client out from another. The per-address key is per tenant: the tenant sets its limit,
and one tenant's callers (a shared proxy's address, say) must not lock out another's.

The check is on the path of every authenticated request; it costs one read of both keys
at once, and usually not even that: a process remembers the addresses that had no
failure in the current window, and trusts that while the store's
``auth_failures_stamp`` of the address (on SQLite, shared memory every worker writes
after committing a failure) has not moved and it saw no failure there itself. Where the
backend has no stamp (MongoDB), every check reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.config import ServiceConfig
from app.directory import TenantView
from app.errors import InvalidClient, ServiceError, TooManyFailedAuthentications
from app.middleware.tenancy import client_address
from app.oauth import client_auth
from app.oauth.endpoint import Exchange, Step
from app.process_caches import ProcessCaches
from app.store.base import Store

WINDOW_S = 60
UNKNOWN_ADDRESS = "unknown"
"""The address of a request whose server knows no peer (a Unix socket)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Failures a window; 0: no limit of that kind."""

    per_client: int
    per_address: int


def limits(tenant: TenantView, config: ServiceConfig) -> Limits:
    """The tenant's ``rate_limits.*`` where it sets them, else the service's flags."""
    per_client = tenant.settings.per_client_per_minute
    per_address = tenant.settings.per_address_per_minute
    return Limits(
        config.rate_limit_per_client if per_client is None else per_client,
        config.rate_limit_per_address if per_address is None else per_address,
    )


def keys_and_limits(
    limits: Limits, address: str, client_id: str | None
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The store keys of a request and the limit of each (0: counted, not enforced). The
    address is always counted, so that its count of 0 means no failure at all from it;
    and it has no spaces, so a client id (which may) cannot make one key look like
    another."""
    if limits.per_client and client_id is not None:
        return (f"client {address} {client_id}", address_key(address)), (
            limits.per_client,
            limits.per_address,
        )
    return (address_key(address),), (limits.per_address,)


def address_key(address: str) -> str:
    return f"address {address}"


def presented_client_id(x: Exchange) -> str | None:
    """The client the request names (not yet authenticated); None when it names none or
    its authentication cannot be read, which the wrapped step then refuses."""
    try:
        client_id = client_auth.presented(x.request, x.form).client_id
    except ServiceError:
        return None
    if not client_id or len(client_id) > client_auth.MAX_CLIENT_ID:
        return None
    return client_id


class ProcessView:
    """What this process knows beyond the store's counts, one per store.

    ``pending``: failures known and still being written, added to what the store says.
    Without them a burst sent at once would find the count unchanged until the first of
    its failures commits (on SQLite, an fsync later).

    ``quiet``: (tenant, address) → (window, stamp) where the store held no failure from
    that address in that window, read while the address key's ``auth_failures_stamp``
    was ``stamp``. While the stamp holds (no process has committed a failure of that
    key since) and this process saw no failure there, the check needs no read.
    """

    def __init__(self) -> None:
        self.pending: dict[tuple[str, str, int], int] = {}
        self.quiet: dict[tuple[str, str], tuple[int, int]] = {}
        self.failures = 0
        """Failures this process has seen: a read that began before one is not trusted."""

    def add_pending(
        self, tenant_id: str, keys: Sequence[str], window: int, counts: list[int]
    ) -> None:
        if self.pending:
            for i, key in enumerate(keys):
                counts[i] += self.pending.get((tenant_id, key, window), 0)

    def change_pending(self, tenant_id: str, keys: Sequence[str], window: int, by: int) -> None:
        for key in keys:
            slot = (tenant_id, key, window)
            count = self.pending.get(slot, 0) + by
            if count:
                self.pending[slot] = count
            else:
                del self.pending[slot]

    def remember_quiet(self, tenant_id: str, address: str, window: int, stamp: int) -> None:
        if len(self.quiet) >= QUIET_LIMIT:
            self.quiet.clear()
        self.quiet[(tenant_id, address)] = (window, stamp)


QUIET_LIMIT = 65_536
"""Addresses remembered per process; past it, forgotten all at once (and read again)."""
_views: ProcessCaches[Store, ProcessView] = ProcessCaches(ProcessView)


def process_view(store: Store) -> ProcessView:
    return _views.of(store)


def limit_failures(authenticate: Step) -> Step:
    """``authenticate`` behind the limits on failed client authentication."""

    async def limited(x: Exchange) -> None:
        limit = limits(x.tenant, x.services.config)
        if not (limit.per_client or limit.per_address):
            await authenticate(x)
            return
        address = client_address(x.request.scope) or UNKNOWN_ADDRESS
        keys = await check(x, limit, address)
        try:
            await authenticate(x)
        except InvalidClient:
            if not keys:
                keys = keys_and_limits(limit, address, presented_client_id(x))[0]
            await count_failure(x, address, keys)
            raise

    return limited


async def check(x: Exchange, limit: Limits, address: str) -> tuple[str, ...]:
    """``429`` when a count is at its limit. The keys read; none when this process knows
    the address had no failure in this window (see ``ProcessView``)."""
    store, tenant_id = x.services.store, x.tenant.tenant_id
    view = process_view(store)
    window = x.now - x.now % WINDOW_S
    # Taken before the read: a failure committed after it moves it.
    stamp = store.auth_failures_stamp(tenant_id, address_key(address))
    if stamp is not None and view.quiet.get((tenant_id, address)) == (window, stamp):
        return ()
    client_id = presented_client_id(x)
    keys, caps = keys_and_limits(limit, address, client_id)
    seen = view.failures
    # One read for every key. A store that cannot answer fails the request (503), as
    # the request's own reads would: the limit is never skipped.
    counts = await store.auth_failures(tenant_id, keys, window)
    view.add_pending(tenant_id, keys, window, counts)
    for key, count, cap in zip(keys, counts, caps, strict=True):
        if cap and count >= cap:
            # Who is being tried, for the operator: the id as presented.
            x.log(rate_limited=key.partition(" ")[0], client_id=client_id)
            raise TooManyFailedAuthentications(window + WINDOW_S - x.now)
    if stamp is not None and counts[-1] == 0 and seen == view.failures:
        view.remember_quiet(tenant_id, address, window, stamp)
    return keys


async def count_failure(x: Exchange, address: str, keys: tuple[str, ...]) -> None:
    """One more failure under each key: known to this process at once, then stored."""
    store, tenant_id = x.services.store, x.tenant.tenant_id
    view = process_view(store)
    window = x.now - x.now % WINDOW_S
    view.failures += 1
    view.quiet.pop((tenant_id, address), None)
    view.change_pending(tenant_id, keys, window, +1)
    try:
        await store.record_auth_failure(tenant_id, keys, window, window + WINDOW_S)
    finally:
        view.change_pending(tenant_id, keys, window, -1)
