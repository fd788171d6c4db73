"""What every endpoint, the admin API and the CLI share: built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.clock import Clock, system_clock
from app.config import ServiceConfig
from app.directory import Directory, TenantView
from app.key_sets import KeySets
from app.keys import KeyRing
from app.outbound import Fetcher, HostRules
from app.plugins.host import PluginHost
from app.propagation.notifier import EventNotifier
from app.store.base import Store


@dataclass(slots=True)
class Services:
    config: ServiceConfig
    store: Store
    keys: KeyRing
    directory: Directory
    operator_key: str
    plugins: PluginHost
    clock: Clock = system_clock
    key_sets: KeySets = field(default_factory=lambda: KeySets(Fetcher()))
    notifier: EventNotifier = field(init=False)
    """Wakes readers of the events feed when new events are committed (one per process)."""

    def __post_init__(self) -> None:
        self.notifier = EventNotifier(self.store)

    def host_rules(self, tenant: TenantView) -> HostRules:
        """Where URLs that this tenant gives (key sets) may be fetched from."""
        return HostRules(tenant.settings.key_fetch_hosts, self.config.fetch_allow_private)

    async def close(self) -> None:
        """Stop what the services started (a background tenant reload, the plugin sandbox,
        outbound connections); the store is closed by whoever opened it."""
        await self.directory.close()
        await self.notifier.close()
        await self.plugins.close()
        await self.key_sets.fetcher.close()
