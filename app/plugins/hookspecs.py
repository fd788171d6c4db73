"""The interception hooks: what a plugin may implement, and what each call means.

A tenant enables plugins by name in ``plugins.enabled`` (with a ``config`` object each);
their hooks run in that order, for that tenant only. Operator plugins (trusted, in the
service process) implement these with ``@hookimpl``; a tenant's uploaded plugin defines
plain functions of the same names taking and returning JSON (the wire forms of the
types below), and runs in the sandbox.

Any hook may be ``async def``: its coroutine is awaited. pluggy itself is synchronous,
so the host calls each enabled plugin's implementation in the tenant's order and awaits
what it returns; ``firstresult`` is never used.

A hook that raises, times out or returns something not listed here *fails*: the failure
is logged with the plugin's name and version, counted, recorded as a ``plugin_failed``
event, and handled by the tenant's ``plugins.failure_mode``: for ``pre_auth`` and
``pre_revoke`` (``.pre``) ``fail_closed`` answers ``503 temporarily_unavailable`` with
nothing revoked, ``fail_open`` skips that plugin; for ``post_revoke`` and
``response_mapping`` (``.post``), which never change the status, ``fail_closed`` skips
the plugins after it and ``fail_open`` goes on with them.

.. versionadded:: 0.2
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from app.plugins.context import HookContext, OutcomeView, PlanView, ResponseView
    from app.plugins.decisions import PlanDecision, PreAuthDecision, ResponseAdditions
    from app.types import JSON

PROJECT = "revocation_service"
ENTRY_POINT_GROUP = "revocation_service.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def plugin_config(config: JSON) -> JSON | None:
    """Check this plugin's configuration when a tenant enables it.

    Runs when the setting ``plugins.enabled`` is written (admin API ``PUT``/``PATCH``,
    a tenant file, the CLI), never on the request path. Raise ``ValueError`` with a
    message to refuse it (``400 invalid_request`` with ``field`` =
    ``plugins.enabled[i].config``); return a normalised config to store instead of the
    given one, or ``None`` to store it as given. Operator plugins only.
    """


@hookspec
def plugin_shutdown() -> Awaitable[None] | None:
    """Once, when the service process stops, after its last request: deliver or drop
    what the plugin queued in the background (bounded: the process is stopping).
    Exceptions are logged and ignored. Operator plugins only.
    """


@hookspec
def pre_auth(
    context: HookContext,
) -> PreAuthDecision | Awaitable[PreAuthDecision | None] | None:
    """Before client authentication, at the revocation and introspection endpoints.

    ``context.client`` and ``context.credential`` are ``None``; ``context.params`` holds
    the form's parameters without ``token``, ``client_secret`` and ``client_assertion``;
    ``context.presented_auth`` names the authentication the request carries.

    Return ``None`` to go on, ``Reject(status, error, description)`` to answer that
    OAuth error now (status 400 to 499; an audit ``plugin_rejected`` event), or
    ``Authenticate(client_id)`` to authenticate the request as that registered, enabled
    client of the tenant, skipping the core's client authentication. The first plugin
    that rejects or authenticates decides; later plugins are not called.
    """


@hookspec
def pre_revoke(
    context: HookContext, plan: PlanView
) -> PlanDecision | Awaitable[PlanDecision | None] | None:
    """After the token is found and its owner checked, before anything is revoked.

    Also for every other revocation: ``token_type_hint=all`` (``plan.cause == "all"``,
    no credential) and the admin API's withdrawal of a client by a subject
    (``context.endpoint == "admin.withdraw"``, no client). ``plan`` is what the tenant's
    cascade policy would revoke, as changed by the plugins before this one.

    Return ``None`` to leave the plan as it is, ``Veto(reason)`` to revoke nothing (the
    caller still gets ``200``; a ``plugin_veto`` event; later plugins are not called), or
    ``PlanChange(cascade=…, grant_ids=…, subjects=…, device_session_ids=…)`` to re-plan
    under another cascade policy (narrow: ``token``; widen: ``subject``; needs a found
    credential) and/or to revoke more (every credential of those grants, (client, sub)
    pairs and sessions of the tenant, and their JWTs through not-before marks). A change
    is recorded in the same transaction as a ``plugin_narrowed`` or ``plugin_widened``
    event.
    """


@hookspec
def post_revoke(context: HookContext, outcome: OutcomeView) -> Awaitable[None] | None:
    """After the store has committed a revocation, before the response is sent.

    ``outcome`` says whether the plan was applied (``False``: the token was already
    revoked), how many credentials fell, the cause and the event ids. Not called when
    nothing was to be revoked or a plugin vetoed. The return value is ignored: this hook
    observes (audit, notify); it cannot change the response. Do slow work (HTTP calls)
    in the background.
    """


@hookspec
def response_mapping(
    context: HookContext, response: ResponseView
) -> ResponseAdditions | Awaitable[ResponseAdditions | None] | None:
    """Last, before any response of the revocation and introspection endpoints is sent,
    errors included.

    ``response`` has the status and the JSON body (``None`` for the empty ``200`` of a
    revocation), with what earlier plugins added. Return ``ResponseAdditions(attributes,
    headers)`` to add JSON members (never replacing one already there) and response
    headers (not the framing, caching, authentication or CORS headers the service
    sets). An empty revocation ``200`` with attributes becomes a JSON object.
    """
