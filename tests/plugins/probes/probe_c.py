"""A synchronous probe plugin (see ``_probe``)."""

from __future__ import annotations

from typing import Any

from app.plugins.context import HookContext, OutcomeView, PlanView, ResponseView
from app.plugins.hookspecs import hookimpl
from tests.plugins.probes._probe import answer, check

__version__ = "1"
NAME = "probe_c"


@hookimpl
def plugin_config(config: dict[str, Any]) -> None:
    check(config)


@hookimpl
def pre_auth(context: HookContext) -> Any:
    return answer(NAME, "pre_auth", context)


@hookimpl
def pre_revoke(context: HookContext, plan: PlanView) -> Any:
    return answer(NAME, "pre_revoke", context, plan=plan)


@hookimpl
def post_revoke(context: HookContext, outcome: OutcomeView) -> Any:
    return answer(NAME, "post_revoke", context, outcome=outcome)


@hookimpl
def response_mapping(context: HookContext, response: ResponseView) -> Any:
    return answer(NAME, "response_mapping", context, response=response)
