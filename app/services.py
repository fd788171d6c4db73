"""What every endpoint, the admin API and the CLI share: built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from app.clock import Clock, system_clock
from app.config import ServiceConfig
from app.directory import Directory
from app.keys import KeyRing
from app.store.base import Store


@dataclass(slots=True)
class Services:
    config: ServiceConfig
    store: Store
    keys: KeyRing
    directory: Directory
    operator_key: str
    clock: Clock = system_clock
