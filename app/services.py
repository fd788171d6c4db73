"""What every endpoint, the admin API and the CLI share: built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from app.clock import Clock, system_clock
from app.config import ServiceConfig
from app.directory import Directory
from app.keys import KeyRing
from app.plugins.host import PluginHost
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

    async def close(self) -> None:
        """Stop what the services started (the plugin sandbox); the store is closed by
        whoever opened it."""
        await self.plugins.close()
