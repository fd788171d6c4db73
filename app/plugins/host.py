"""The plugin host: which plugins a tenant runs, in which order, and calling one of them.

A tenant's chain is its ``plugins.enabled`` list resolved to operator plugins (called
in-process) and the current versions of its uploaded plugins (called in the sandbox),
cached until the configuration version moves, so an upload or a settings change is
in force from the next request on every worker and instance.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from app.directory import Directory, TenantView
from app.errors import FieldError
from app.models import PluginVersion
from app.plugins.context import HookContext
from app.plugins.operator import OperatorPlugin
from app.store.base import Store
from app.types import JSON, TenantId

if TYPE_CHECKING:
    from app.plugins.sandbox import Sandbox, SandboxLimits

MAX_DETAIL = 300
log = structlog.get_logger("revocation.plugins")


class Wired(Protocol):
    def to_wire(self) -> JSON: ...


@dataclass(frozen=True, slots=True)
class Bound:
    """One enabled plugin of a tenant, with that tenant's configuration."""

    name: str
    version: str
    config: Mapping[str, Any]
    hooks: frozenset[str]
    operator: OperatorPlugin | None = None
    upload: PluginVersion | None = None
    awaited: frozenset[str] = frozenset()
    """The hooks whose implementation is ``async def``."""

    @property
    def label(self) -> str:
        """``name@version``: the ``cause`` of its audit events."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Chain:
    """A tenant's enabled plugins in order, and for each hook those that implement it."""

    plugins: tuple[Bound, ...]
    by_hook: Mapping[str, tuple[Bound, ...]]

    @classmethod
    def of(cls, plugins: tuple[Bound, ...]) -> Chain:
        hooks = {hook for bound in plugins for hook in bound.hooks}
        return cls(plugins, {h: tuple(b for b in plugins if h in b.hooks) for h in hooks})

    def __bool__(self) -> bool:
        return bool(self.plugins)


NO_PLUGINS = Chain((), {})


class PluginFailed(Exception):
    def __init__(self, bound: Bound, hook: str, kind: str, detail: str) -> None:
        super().__init__(f"{bound.label} {hook}: {kind}: {detail}")
        self.bound = bound
        self.hook = hook
        self.kind = kind
        self.detail = detail[:MAX_DETAIL]


class PluginHost:
    def __init__(
        self,
        store: Store,
        directory: Directory,
        operator_plugins: Mapping[str, OperatorPlugin],
        limits: SandboxLimits | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.operator_plugins = operator_plugins
        self.limits = limits
        self.failures: Counter[tuple[TenantId, str]] = Counter()
        """(tenant, plugin) → failed calls in this process."""
        self._sandbox: Sandbox | None = None
        self._chains: dict[TenantId, tuple[int | None, tuple[JSON, ...], Chain]] = {}

    @property
    def sandbox(self) -> Sandbox:
        """Started on first use: a service whose tenants upload nothing never starts it."""
        if self._sandbox is None:
            from app.plugins.sandbox import Sandbox, SandboxLimits

            self._sandbox = Sandbox(self.limits or SandboxLimits())
        return self._sandbox

    async def close(self) -> None:
        """Stop the sandbox's workers and let operator plugins finish (``plugin_shutdown``)."""
        if self._sandbox is not None:
            await self._sandbox.close()
            self._sandbox = None
        for plugin in self.operator_plugins.values():
            if plugin.shutdown is None:
                continue
            try:
                done = plugin.shutdown()
                if inspect.isawaitable(done):
                    await done
            except Exception as exc:
                log.warning("plugin_shutdown_failed", plugin=plugin.name, error=repr(exc)[:300])

    # --- a tenant's chain ----------------------------------------------------------------

    async def chain(self, tenant: TenantView) -> Chain:
        enabled = tenant.settings.plugins
        if not enabled:
            return NO_PLUGINS
        version = self.directory.tenant_version(tenant.tenant_id)
        cached = self._chains.get(tenant.tenant_id)
        if cached is not None and cached[0] == version and cached[1] is enabled:
            return cached[2]
        uploads = await self._uploads(tenant.tenant_id, enabled)
        chain = Chain.of(tuple(self._bind(entry, uploads) for entry in enabled))
        self._chains[tenant.tenant_id] = (version, enabled, chain)
        return chain

    async def _uploads(
        self, tenant_id: TenantId, enabled: Sequence[JSON]
    ) -> Mapping[str, PluginVersion]:
        """The tenant's uploads by name; the store is asked only when ``enabled`` names a
        plugin that is not an operator plugin."""
        if all(entry["name"] in self.operator_plugins for entry in enabled):
            return {}
        return {p.name: p for p in await self.store.list_plugins(tenant_id)}

    def _bind(self, entry: JSON, uploads: Mapping[str, PluginVersion]) -> Bound:
        name: str = entry["name"]
        config = MappingProxyType(dict(entry.get("config", {})))
        if (operator := self.operator_plugins.get(name)) is not None:
            hooks = frozenset(operator.hooks)
            return Bound(
                name, operator.version, config, hooks, operator, None, operator.async_hooks
            )
        if (upload := uploads.get(name)) is not None:
            return Bound(name, str(upload.version), config, frozenset(upload.hooks), None, upload)
        # Deleted since it was enabled: every call fails, as the failure mode says.
        return Bound(name, "missing", config, frozenset({"pre_auth", "pre_revoke"}))

    # --- calling one plugin ------------------------------------------------------------

    async def invoke(
        self, tenant_id: TenantId, bound: Bound, hook: str, context: HookContext, **args: Wired
    ) -> Any:
        """The hook's raw return value; ``PluginFailed`` for anything that went wrong."""
        context = context.for_plugin(bound.config)
        if bound.upload is not None:
            return await self._sandboxed(tenant_id, bound, hook, context, args)
        if bound.operator is None:
            raise PluginFailed(bound, hook, "missing", "no such plugin in this tenant")
        try:
            result = bound.operator.hooks[hook](context=context, **args)
            return await result if hook in bound.awaited else result
        except Exception as exc:
            raise PluginFailed(bound, hook, "exception", f"{type(exc).__name__}: {exc}") from None

    async def _sandboxed(
        self,
        tenant_id: TenantId,
        bound: Bound,
        hook: str,
        context: HookContext,
        args: Mapping[str, Wired],
    ) -> Any:
        from app.plugins.sandbox import PluginFailure

        assert bound.upload is not None
        wire = {name: arg.to_wire() for name, arg in args.items()}
        wire["context"] = context.to_wire()
        try:
            done = await self.sandbox.call(tenant_id, bound.upload, hook, wire)
        except PluginFailure as exc:
            raise PluginFailed(bound, hook, exc.kind, exc.detail) from None
        return done.value

    # --- settings ------------------------------------------------------------------------

    async def check_enabled(self, tenant_id: TenantId, settings: JSON) -> JSON:
        """``settings`` with each ``plugins.enabled`` entry checked against the plugins
        that exist (operator plugins, the tenant's uploads) and its config validated."""
        enabled = settings.get("plugins", {}).get("enabled")
        if not enabled:
            return settings
        uploads = await self._uploads(tenant_id, enabled)
        checked: list[JSON] = []
        for i, entry in enumerate(enabled):
            here = f"plugins.enabled[{i}]"
            name = entry["name"]
            operator = self.operator_plugins.get(name)
            if operator is not None:
                try:
                    config = operator.validate_config(entry["config"])
                except (ValueError, TypeError) as exc:
                    raise FieldError(f"{here}.config", str(exc)) from None
                checked.append({"name": name, "config": config})
            elif name in uploads:
                checked.append(entry)
            else:
                raise FieldError(
                    f"{here}.name",
                    f"no plugin named {name!r}: neither an operator plugin nor uploaded "
                    "to this tenant",
                )
        return {**settings, "plugins": {**settings["plugins"], "enabled": checked}}
