"""A tenant's uploaded interception plugins: versions, rollback, removal, dry runs.

Every upload is a new version and becomes current; older versions are kept and one can
be made current again. A plugin enabled in the tenant's ``plugins.enabled`` cannot be
removed (``409``): take it out of the setting first. Names of operator plugins are
taken (``409``). A dry run calls one hook of a version in the sandbox with a sample
context and tells the decision, the duration and what the code printed.
"""

from __future__ import annotations

from typing import Any

from app.admin.fields import as_object
from app.admin.tenants import require_tenant
from app.directory import TenantView
from app.errors import Conflict, FieldError, NotFound
from app.models import PluginVersion, Tenant
from app.plugins import decisions
from app.plugins.interception import context_of
from app.plugins.uploads import check_name, check_source
from app.services import Services
from app.settings import lookup
from app.types import JSON, TenantId

SAMPLE_ARGS: dict[str, tuple[str, JSON] | None] = {
    "pre_auth": None,
    "pre_revoke": ("plan", {"cause": "grant", "selectors": [{"by": "token"}]}),
    "post_revoke": ("outcome", {"applied": True, "count": 1, "cause": "grant", "event_ids": []}),
    "response_mapping": ("response", {"status": 200, "body": None}),
}
DECIDERS = {
    "pre_auth": decisions.decide_pre_auth,
    "pre_revoke": decisions.decide_pre_revoke,
    "post_revoke": lambda value: None,
    "response_mapping": decisions.decide_response,
}


async def put_plugin(
    services: Services, tenant_id: TenantId, name: str, body: bytes, uploaded_by: str
) -> PluginVersion:
    await require_tenant(services, tenant_id)
    check_name(name)
    if name in services.plugins.operator_plugins:
        raise Conflict(f"{name} is the name of an operator plugin")
    checked = check_source(body)
    return await services.store.add_plugin_version(
        PluginVersion(
            tenant_id=tenant_id,
            name=name,
            version=0,
            source=checked.source,
            sha256=checked.sha256,
            hooks=checked.hooks,
            uploaded_by=uploaded_by,
            uploaded_at=services.clock(),
        )
    )


async def get_plugin(
    services: Services, tenant_id: TenantId, name: str, version: int | None = None
) -> PluginVersion:
    return (await read_plugin(services, tenant_id, name, version))[0]


async def read_plugin(
    services: Services, tenant_id: TenantId, name: str, version: int | None = None
) -> tuple[PluginVersion, bool]:
    """That version (the current one by default), and whether the plugin is enabled."""
    tenant = await require_tenant(services, tenant_id)
    found = await services.store.get_plugin_version(tenant_id, name, version)
    if found is None:
        raise NotFound("no such plugin" if version is None else "no such plugin version")
    return found, name in enabled_names(tenant)


async def list_plugins(services: Services, tenant_id: TenantId) -> list[tuple[PluginVersion, bool]]:
    """The current version of each plugin, and whether ``plugins.enabled`` names it."""
    enabled = enabled_names(await require_tenant(services, tenant_id))
    return [(p, p.name in enabled) for p in await services.store.list_plugins(tenant_id)]


async def list_versions(services: Services, tenant_id: TenantId, name: str) -> list[PluginVersion]:
    await require_tenant(services, tenant_id)
    found = await services.store.list_plugin_versions(tenant_id, name)
    if not found:
        raise NotFound("no such plugin")
    return found


async def activate(
    services: Services, tenant_id: TenantId, name: str, version: int
) -> PluginVersion:
    """Make a kept version current again (rollback, or forward again)."""
    await require_tenant(services, tenant_id)
    if not await services.store.set_current_plugin_version(tenant_id, name, version):
        raise NotFound("no such plugin version")
    return await get_plugin(services, tenant_id, name)


def enabled_names(tenant: Tenant) -> set[str]:
    return {entry["name"] for entry in lookup(tenant.settings, "plugins.enabled")}


async def delete_plugin(services: Services, tenant_id: TenantId, name: str) -> None:
    if name in enabled_names(await require_tenant(services, tenant_id)):
        raise Conflict(f"{name} is enabled in plugins.enabled: take it out there first")
    if not await services.store.delete_plugin(tenant_id, name):
        raise NotFound("no such plugin")


def parse_version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise FieldError("version", "must be a positive whole number")
    return int(text)


async def dry_run(services: Services, tenant_id: TenantId, name: str, body: Any) -> JSON:
    """Call one hook of the plugin in the sandbox on a sample context.

    Body: ``{"hook", "context"?, "plan"|"outcome"|"response"?, "version"?}`` (the
    plugin's ``config`` goes in ``context``); missing parts get sample values. Nothing
    is revoked and no event is recorded.
    """
    request = as_object(body)
    unknown = set(request) - {"hook", "context", "plan", "outcome", "response", "version"}
    if unknown:
        raise FieldError(sorted(unknown)[0], "unknown key")
    hook = request.get("hook")
    if hook not in SAMPLE_ARGS:
        raise FieldError("hook", f"must be one of: {', '.join(SAMPLE_ARGS)}")
    version = request.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise FieldError("version", "must be a whole number")
    plugin = await get_plugin(services, tenant_id, name, version)
    if hook not in plugin.hooks:
        raise FieldError("hook", f"version {plugin.version} does not define {hook}")
    tenant = await require_tenant(services, tenant_id)
    sample = context_of(TenantView.of(tenant), "revocation", services.clock()).to_wire()
    context: JSON = {**sample, **as_object(request.get("context", {}), "context")}
    args: dict[str, Any] = {"context": context}
    sample_arg = SAMPLE_ARGS[hook]
    if sample_arg is not None:
        arg, default = sample_arg
        args[arg] = request.get(arg, default)
    from app.plugins.sandbox import PluginFailure

    out: JSON = {"name": name, "version": plugin.version, "hook": hook}
    try:
        done = await services.plugins.sandbox.call(tenant_id, plugin, hook, args)
    except PluginFailure as exc:
        return {**out, "failed": {"kind": exc.kind, "detail": exc.detail}}
    out.update(decision=done.value, duration_ms=round(done.duration_s * 1000, 3))
    out["output"] = done.output
    try:
        DECIDERS[hook](done.value)
    except decisions.InvalidDecision as exc:
        out["failed"] = {"kind": "invalid_decision", "detail": str(exc)}
    return out
