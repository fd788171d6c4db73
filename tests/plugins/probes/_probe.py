"""What the probe plugins share: a record of every call, and decisions read from their
per-tenant config (``{"pre_auth": …, "pre_revoke": …, "response_mapping": …,
"raise": [hooks], "endpoints": [...]}``), so each test says what a probe answers; outside
its ``endpoints`` a probe records nothing and answers None."""

from __future__ import annotations

from typing import Any

from app.plugins.context import HookContext

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
