"""What the probe plugins share: a record of every call, and decisions read from their
per-tenant config (``{"pre_auth": …, "pre_revoke": …, "response_mapping": …,
"raise": [hooks], "endpoints": [...]}``), so each test says what a probe answers; outside
its ``endpoints`` a probe records nothing and answers None."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.plugins.context import HookContext, OutcomeView, PlanView, ResponseView
from app.plugins.hookspecs import hookimpl

CALLS: list[dict[str, Any]] = []


def answer(name: str, hook: str, context: HookContext, **args: Any) -> Any:
    if context.endpoint not in context.config.get("endpoints", (context.endpoint,)):
        return None
    CALLS.append(
        {
            "plugin": name,
            "hook": hook,
            "tenant_id": context.tenant_id,
            "context": context.to_wire(),
            "args": {k: v.to_wire() for k, v in args.items()},
        }
    )
    if hook in context.config.get("raise", ()):
        raise RuntimeError(f"{name} was told to fail in {hook}")
    return context.config.get(hook)


def check(config: dict[str, Any]) -> None:
    if config.get("bad"):
        raise ValueError("bad is not allowed")


def calls(hook: str | None = None) -> list[dict[str, Any]]:
    return [c for c in CALLS if hook is None or c["hook"] == hook]


def sync_hooks(name: str) -> tuple[Callable[..., Any], ...]:
    """``plugin_config`` and the four hooks of a synchronous probe called ``name``."""

    @hookimpl
    def plugin_config(config: dict[str, Any]) -> None:
        check(config)

    @hookimpl
    def pre_auth(context: HookContext) -> Any:
        return answer(name, "pre_auth", context)

    @hookimpl
    def pre_revoke(context: HookContext, plan: PlanView) -> Any:
        return answer(name, "pre_revoke", context, plan=plan)

    @hookimpl
    def post_revoke(context: HookContext, outcome: OutcomeView) -> Any:
        return answer(name, "post_revoke", context, outcome=outcome)

    @hookimpl
    def response_mapping(context: HookContext, response: ResponseView) -> Any:
        return answer(name, "response_mapping", context, response=response)

    return plugin_config, pre_auth, pre_revoke, post_revoke, response_mapping
