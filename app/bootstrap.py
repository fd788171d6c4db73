"""Build the per-process services: keys, the store, the operator's admin key."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from app.clock import Clock, system_clock
from app.config import ADMIN_KEY_ENV, ADMIN_KEY_FILE, ServiceConfig
from app.directory import Directory
from app.errors import ConfigError
from app.keys import MASTER_KEY_FILE, KeyRing, has_master_key, write_secret_file
from app.plugins.host import PluginHost
from app.plugins.operator import load_operator_plugins
from app.services import Services
from app.store.base import Store
from app.store.factory import make_store


def operator_key_path(config: ServiceConfig) -> Path:
    return config.data_dir / ADMIN_KEY_FILE


def load_operator_key(config: ServiceConfig) -> str:
    """``REVOCATION_ADMIN_KEY``, else ``<data-dir>/admin-key`` (generated once, 0600)."""
    if key := os.environ.get(ADMIN_KEY_ENV):
        return key
    path = operator_key_path(config)
    if not path.exists():
        # Another worker may create it first.
        with contextlib.suppress(FileExistsError):
            write_secret_file(path, "rsk_op_" + secrets.token_urlsafe(32))
    return path.read_text().strip()


async def open_services(
    config: ServiceConfig, *, store: Store | None = None, clock: Clock = system_clock
) -> Services:
    """Keys, the store (``store``: one the caller opened and will close), the operator key."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    opened = store is None
    if store is None:
        store = make_store(config)
        await store.open()
    try:
        keys = await _load_keys(config, store)
    except BaseException:
        if opened:
            await store.close()
        raise
    directory = Directory(store)
    await directory.refresh()
    plugins = PluginHost(store, directory, load_operator_plugins(config.plugins_dir))
    return Services(config, store, keys, directory, load_operator_key(config), plugins, clock)


async def _load_keys(config: ServiceConfig, store: Store) -> KeyRing:
    """The master keys; a new one is generated only for a store without tenants.

    A store with tenants holds hashes made under a master key: a fresh one would match
    none of them, and every token would silently become unrevocable.
    """
    if not has_master_key(config.data_dir) and await store.list_tenants():
        raise ConfigError(
            str(config.data_dir / MASTER_KEY_FILE),
            "master key",
            f"is missing, and the {store.name} store already holds tenants whose tokens and "
            "secrets are hashed under a master key: restore the data directory's key "
            "files or set REVOCATION_MASTER_KEY (see docs/OPERATIONS.md, Keys)",
        )
    return KeyRing.load(config.data_dir)
