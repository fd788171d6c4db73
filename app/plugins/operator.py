"""Operator plugins: trusted modules loaded into the service process at start-up.

They come from the ``plugins/`` folder (one module per ``*.py`` file, named after it)
and from installed packages on the entry-point group ``revocation_service.plugins``
(named after the entry point). pluggy registers them against ``hookspecs``;
``check_pending`` refuses a misspelt hook at start-up. A tenant runs one only when its
``plugins.enabled`` names it.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pluggy

from app.plugins import hookspecs
from app.plugins.hookspecs import ENTRY_POINT_GROUP, PROJECT
from app.types import JSON

HOOKS = ("pre_auth", "pre_revoke", "post_revoke", "response_mapping")
"""The interception hooks, in the order a request meets them."""
MODULE_PREFIX = "revocation_plugins."


@dataclass(frozen=True, slots=True)
class OperatorPlugin:
    name: str
    version: str
    hooks: Mapping[str, Callable[..., Any]]
    """Hook name → implementation, for the interception hooks it implements."""
    configure: Callable[..., Any] | None = None
    shutdown: Callable[..., Any] | None = None

    @property
    def async_hooks(self) -> frozenset[str]:
        return frozenset(h for h, fn in self.hooks.items() if inspect.iscoroutinefunction(fn))

    def validate_config(self, config: JSON) -> JSON:
        """The config to store; ``ValueError`` when the plugin refuses it."""
        if self.configure is None:
            return config
        normalised = self.configure(config=config)
        return config if normalised is None else dict(normalised)


def _import_file(path: Path) -> ModuleType:
    name = MODULE_PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load plugin {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def plugin_manager(plugins_dir: Path | None, *, entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if plugins_dir is not None and plugins_dir.is_dir():
        for path in sorted(plugins_dir.glob("*.py")):
            if not path.name.startswith("_"):
                pm.register(_import_file(path), name=path.stem)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


def load_operator_plugins(
    plugins_dir: Path | None, *, entry_points: bool = True
) -> Mapping[str, OperatorPlugin]:
    """Every operator plugin by name."""
    pm = plugin_manager(plugins_dir, entry_points=entry_points)
    out: dict[str, OperatorPlugin] = {}
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        impls = {
            hook: impl.function
            for hook in (*HOOKS, "plugin_config", "plugin_shutdown")
            for impl in getattr(pm.hook, hook).get_hookimpls()
            if impl.plugin is plugin
        }
        configure = impls.pop("plugin_config", None)
        shutdown = impls.pop("plugin_shutdown", None)
        version = str(getattr(plugin, "__version__", "0"))
        out[name] = OperatorPlugin(name, version, MappingProxyType(impls), configure, shutdown)
    return MappingProxyType(out)
