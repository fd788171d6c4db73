"""An asynchronous probe plugin (see ``_probe``): pluggy hands back coroutines."""

from __future__ import annotations

import asyncio
from typing import Any

from app.plugins.context import HookContext, OutcomeView, PlanView, ResponseView
from app.plugins.hookspecs import hookimpl
from tests.plugins.probes._probe import answer

__version__ = "2"
NAME = "probe_b"


@hookimpl
async def pre_auth(context: HookContext) -> Any:
    await asyncio.sleep(0)
    return answer(NAME, "pre_auth", context)


@hookimpl
async def pre_revoke(context: HookContext, plan: PlanView) -> Any:
    await asyncio.sleep(0)
    return answer(NAME, "pre_revoke", context, plan=plan)


@hookimpl
async def post_revoke(context: HookContext, outcome: OutcomeView) -> Any:
    await asyncio.sleep(0)
    return answer(NAME, "post_revoke", context, outcome=outcome)


@hookimpl
async def response_mapping(context: HookContext, response: ResponseView) -> Any:
    await asyncio.sleep(0)
    return answer(NAME, "response_mapping", context, response=response)
