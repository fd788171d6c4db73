"""Tenants and clients as the request path sees them, cached per process.

The cache is checked against ``Store.config_version()`` on every request, so a change
made by another worker or instance is seen as soon as the backend reports it.
Revocation state is never cached here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from app.issuers import normalize_issuer
from app.models import Client, Tenant
from app.settings import TenantSettings
from app.store.base import Store
from app.types import ClientId, TenantId


@dataclass(frozen=True, slots=True)
class TenantView:
    record: Tenant
    settings: TenantSettings
    issuers: tuple[str, ...]
    """Normalised issuer first, then aliases."""

    @property
    def tenant_id(self) -> TenantId:
        return self.record.tenant_id

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    @classmethod
    def of(cls, tenant: Tenant) -> TenantView:
        settings = TenantSettings.of(tenant.settings)
        return cls(tenant, settings, tuple(settings.all_issuers()))


@lru_cache(maxsize=4096)
def _normalized(url: str) -> str | None:
    """``normalize_issuer`` for request headers, which repeat: memoised, None if invalid."""
    try:
        return normalize_issuer(url)
    except ValueError:
        return None


class Directory:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._version: int | None = None
        self._tenants: dict[TenantId, TenantView] = {}
        self._by_issuer: dict[str, TenantView] = {}
        self._by_origin: dict[str, list[tuple[str, TenantView]]] = {}
        self._clients: dict[tuple[TenantId, ClientId], Client | None] = {}

    async def refresh(self) -> None:
        """Reload when the store's configuration version moved."""
        version = await self._store.config_version()
        if version != self._version:
            tenants = await self._store.list_tenants()
            self._load(tenants)
            self._version = version

    @property
    def version(self) -> int | None:
        """The configuration version the cache holds (None until loaded)."""
        return self._version

    def invalidate(self) -> None:
        self._version = None

    def _load(self, tenants: Iterable[Tenant]) -> None:
        views = {t.tenant_id: TenantView.of(t) for t in tenants}
        by_issuer: dict[str, TenantView] = {}
        by_origin: dict[str, list[tuple[str, TenantView]]] = {}
        for view in views.values():
            for issuer in view.issuers:
                by_issuer[issuer] = view
            # URL routing uses the issuer itself (aliases count for the Issuer header).
            parts = urlsplit(view.issuers[0])
            origin = f"{parts.scheme}://{parts.netloc}"
            by_origin.setdefault(origin, []).append((parts.path, view))
        for entries in by_origin.values():
            entries.sort(key=lambda e: len(e[0]), reverse=True)
        self._tenants, self._by_issuer, self._by_origin = views, by_issuer, by_origin
        self._clients = {}

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
        if origin is None:
            return None
        for prefix, view in self._by_origin.get(origin, ()):
            if path == prefix or path.startswith(prefix + "/") or not prefix:
                return view, path[len(prefix) :] or "/"
        return None

    async def client(self, tenant_id: TenantId, client_id: ClientId) -> Client | None:
        key = (tenant_id, client_id)
        if key in self._clients:
            return self._clients[key]
        client = await self._store.get_client(tenant_id, client_id)
        if len(self._clients) > 100_000:
            self._clients.clear()
        self._clients[key] = client
        return client
