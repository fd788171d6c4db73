"""Tenants and clients as the request path sees them, cached per process.

The cache is checked against ``Store.config_version()`` on every request, so a change
made by another worker or instance is seen as soon as the backend reports it. When the
version moved, only the tenants the store names as changed (``config_changes_since``) are
read again and only their clients dropped; everything when the store cannot say. Such a
full reload of a loaded cache (MongoDB's periodic one, or after its change stream was
lost) runs in the background and requests meanwhile answer from the cache as it is,
unless this process's own write asked for it (``invalidate``). Revocation state is never
cached here.

Every lookup costs the same whatever the number of tenants: by id and by issuer, one
dict lookup; by URL, one per whole-segment prefix of the request path, at most as many
as the deepest issuer path on that origin has segments (``OriginRoutes``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

import structlog

from app.issuers import normalize_issuer
from app.models import Client, Tenant
from app.settings import TenantSettings
from app.store.base import Store
from app.types import ClientId, TenantId

log = structlog.get_logger("revocation.directory")


@dataclass(frozen=True, slots=True)
class TenantView:
    record: Tenant
    settings: TenantSettings
    issuers: tuple[str, ...]
    """Normalised issuer first, then aliases."""
    url_key: tuple[str, str]
    """Origin and path of the issuer URL routing uses (aliases count for the Issuer
    header only)."""

    @property
    def tenant_id(self) -> TenantId:
        return self.record.tenant_id

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    @classmethod
    def of(cls, tenant: Tenant) -> TenantView:
        settings = TenantSettings.of(tenant.settings)
        issuers = tuple(settings.all_issuers())
        parts = urlsplit(issuers[0])
        return cls(tenant, settings, issuers, (f"{parts.scheme}://{parts.netloc}", parts.path))


@lru_cache(maxsize=4096)
def _normalized(url: str) -> str | None:
    """``normalize_issuer`` for request headers, which repeat: memoised, None if invalid."""
    try:
        return normalize_issuer(url)
    except ValueError:
        return None


@dataclass(slots=True)
class OriginRoutes:
    """The issuers on one origin (scheme and host), by path."""

    by_path: dict[str, TenantView] = field(default_factory=dict)
    depths: dict[int, int] = field(default_factory=dict)
    """How many issuer paths have each number of ``/``."""
    deepest: int = 0

    def add(self, path: str, view: TenantView) -> None:
        self.by_path[path] = view
        depth = path.count("/")
        self.depths[depth] = self.depths.get(depth, 0) + 1
        self.deepest = max(self.deepest, depth)

    def remove(self, path: str) -> None:
        del self.by_path[path]
        depth = path.count("/")
        if self.depths[depth] > 1:
            self.depths[depth] -= 1
        else:
            del self.depths[depth]
            self.deepest = max(self.depths, default=0)

    def match(self, path: str) -> tuple[TenantView, str] | None:
        """The issuer that is the longest whole-segment prefix of ``path``: ``path``
        itself or ``path`` cut before one of its ``/``; the root issuer (``""``) matches
        every path. Prefixes with more ``/`` than the deepest issuer path are not tried,
        so a path of a thousand segments costs what the deepest issuer does."""
        by_path, deepest = self.by_path, self.deepest
        cuts: list[int] = []
        at = path.find("/", 1)
        while at != -1 and len(cuts) < deepest:
            cuts.append(at)
            at = path.find("/", at + 1)
        if at == -1 and path.startswith("/") + len(cuts) <= deepest:
            cuts.append(len(path))
        for cut in reversed(cuts):
            view = by_path.get(path[:cut])
            if view is not None:
                return view, path[cut:] or "/"
        view = by_path.get("")
        return None if view is None else (view, path or "/")


class Directory:
    """One process's tenants, their routes and clients, at one configuration version."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._version: int | None = None
        self._stale = False
        """Set by ``invalidate``."""
        self._catching_up: asyncio.Future[None] | None = None
        self._reloading: asyncio.Future[None] | None = None
        """A full reload running behind requests (see the module's docstring)."""
        self._tenants: dict[TenantId, TenantView] = {}
        self._by_issuer: dict[str, TenantView] = {}
        self._by_origin: dict[str, OriginRoutes] = {}
        self._clients: dict[TenantId, dict[ClientId, Client | None]] = {}
        self._client_count = 0
        self._loaded_at = 0
        """The version of the last full load."""
        self._changed_at: dict[TenantId, int] = {}
        """The version at which each tenant was last read again on its own."""

    async def refresh(self) -> None:
        """Bring the cache up to the store's configuration version: the tenants changed
        since, or all of them when the store cannot name them.

        One catch-up at a time: requests arriving while one runs wait for it (a full
        reload of 10,000 tenants takes long on a slow store, and sixteen of them at once
        only made each slower), then look again, in case the version moved meanwhile.
        While a full reload runs in the background, the cache answers as it is."""
        while True:
            version = await self._store.config_version()
            if version == self._version and not self._stale:
                return
            if self._reloading is not None:
                if not self._stale:
                    return
                # This process's write waits for it, then catches up from its version.
                await asyncio.wait([self._reloading])
                continue
            task = self._catching_up
            if task is None:
                task = self._catching_up = asyncio.ensure_future(self._catch_up(version))
                task.add_done_callback(self._caught_up)
            await asyncio.shield(task)

    def _caught_up(self, task: asyncio.Future[None]) -> None:
        self._catching_up = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter has raised it already

    async def _catch_up(self, version: int) -> None:
        # Cleared first: an ``invalidate()`` while this runs makes the next look catch up,
        # and so does a failure here (a stale cache is looked at again, not trusted).
        asked, self._stale = self._stale, False
        try:
            changes = None
            if self._version is not None and version != self._version:
                changes = await self._store.config_changes_since(self._version)
            if changes is None:
                if self._version is None or asked:
                    await self._reload_all(version)
                else:
                    # No write of this process waits for it: requests need not either.
                    self._reloading = asyncio.ensure_future(self._reload_all(version))
                    self._reloading.add_done_callback(self._reloaded)
                return
            # The log's version, not ``version``: the tenants are read after the log, so
            # they are at least as new as it is; anything later moves the version again.
            logged, changed = changes
            for tenant_id in changed:
                self._reload(tenant_id, await self._store.get_tenant(tenant_id), logged)
            self._version = logged
        except BaseException:
            self._stale = True
            raise

    async def _reload_all(self, version: int) -> None:
        try:
            self._load(await self._store.list_tenants())
        except BaseException:
            self._stale = True
            raise
        self._version = self._loaded_at = version
        self._changed_at = {}

    def _reloaded(self, task: asyncio.Future[None]) -> None:
        self._reloading = None
        if not task.cancelled() and task.exception() is not None:
            # The next request catches up itself, and answers 503 if the store is still
            # unavailable: a cache that could not be checked is not trusted.
            log.warning("tenant_reload_failed", error=repr(task.exception()))

    @property
    def reloading(self) -> asyncio.Future[None] | None:
        """The full reload running in the background, if one is."""
        return self._reloading

    async def close(self) -> None:
        """Stop a full reload running in the background."""
        task = self._reloading
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def version(self) -> int | None:
        """The configuration version the cache holds (None until loaded)."""
        return self._version

    def tenant_version(self, tenant_id: TenantId) -> int | None:
        """A version that moves when this tenant's configuration may have changed, and
        not when another tenant's did: for caches of one tenant's state (None until
        loaded)."""
        if self._version is None:
            return None
        return max(self._loaded_at, self._changed_at.get(tenant_id, 0))

    def invalidate(self) -> None:
        """Make the next ``refresh`` catch up even if the version looks unchanged: called
        after this process wrote configuration. A write moves the version, so the tenants
        it names are reloaded; when the version did not move, everything is."""
        self._stale = True

    def _load(self, tenants: Iterable[Tenant]) -> None:
        # A view whose record is unchanged is kept: parsing a tenant's settings costs
        # about 50 µs, comparing its record well under 1, and a full reload (MongoDB's
        # periodic one among them) of 10,000 tenants would otherwise stall the event
        # loop for half a second. Clients are dropped: what changed is not known.
        old = self._tenants
        views: list[TenantView] = []
        kept = 0
        for tenant in tenants:
            view = old.get(tenant.tenant_id)
            if view is not None and view.record == tenant:
                kept += 1
            else:
                view = TenantView.of(tenant)
            views.append(view)
        self._clients, self._client_count = {}, 0
        if kept == len(views) == len(old):
            return  # the same tenants: the indexes stand
        self._tenants, self._by_issuer, self._by_origin = {}, {}, {}
        for view in views:
            self._add(view)

    def _reload(self, tenant_id: TenantId, tenant: Tenant | None, version: int) -> None:
        """Replace one tenant's entries (drop them when it is gone) and its clients."""
        old = self._tenants.pop(tenant_id, None)
        if old is not None:
            for issuer in old.issuers:
                if self._by_issuer.get(issuer) is old:
                    del self._by_issuer[issuer]
            origin, path = old.url_key
            routes = self._by_origin[origin]
            if routes.by_path.get(path) is old:
                routes.remove(path)
                if not routes.by_path:
                    del self._by_origin[origin]
        self._client_count -= len(self._clients.pop(tenant_id, {}))
        self._changed_at[tenant_id] = version
        if tenant is not None:
            self._add(TenantView.of(tenant))

    def _add(self, view: TenantView) -> None:
        self._tenants[view.tenant_id] = view
        for issuer in view.issuers:
            self._by_issuer[issuer] = view
        origin, path = view.url_key
        routes = self._by_origin.get(origin)
        if routes is None:
            routes = self._by_origin[origin] = OriginRoutes()
        old = routes.by_path.get(path)
        if old is not None:
            routes.remove(path)
        routes.add(path, view)

    def tenants(self) -> list[TenantView]:
        return list(self._tenants.values())

    def tenant(self, tenant_id: TenantId) -> TenantView | None:
        return self._tenants.get(tenant_id)

    def by_issuer(self, issuer: str) -> TenantView | None:
        normalized = _normalized(issuer)
        return None if normalized is None else self._by_issuer.get(normalized)

    def by_url(self, scheme: str, host: str, path: str) -> tuple[TenantView, str] | None:
        """The tenant whose issuer is the longest whole-segment prefix of the URL.

        Returns the view and the rest of the path (``/token/revoke``).
        """
        origin = _normalized(f"{scheme}://{host}")
        routes = None if origin is None else self._by_origin.get(origin)
        return None if routes is None else routes.match(path)

    async def client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None:
        clients = self._clients.get(tenant_id)
        if clients is not None and client_id in clients:
            return clients[client_id]
        client = await self._store.get_client(tenant_id, client_id)
        if self._client_count > 100_000:
            self._clients, self._client_count = {}, 0
        self._clients.setdefault(tenant_id, {})[client_id] = client
        self._client_count += 1
        return client
