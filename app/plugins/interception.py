"""Running one tenant's chain of plugins for each hook, and what their decisions do.

``Interception`` is one request's (or one admin operation's) view of the tenant's
chain. Every endpoint and operation that revokes goes through ``pre_revoke`` and
``post_revoke`` here, so an audit plugin never misses a revocation. Decisions that
change an outcome, and failures, become events in the tenant's feed (cause
``name@version``) and fields of the canonical log line.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Any, Literal

import structlog

from app.auth_methods import AuthMethod
from app.directory import TenantView
from app.errors import InvalidClient, PluginRejected, PluginUnavailable, ServiceError
from app.models import (
    ALL_TOKEN_TYPES,
    ByClientSubject,
    ByGrant,
    BySession,
    Credential,
    EventDraft,
    MarkKind,
    NotBeforeMark,
    RevocationOutcome,
    RevocationPlan,
    Selector,
    TokenType,
)
from app.oauth.cascade import client_subject_key, plan_for
from app.plugins.context import HookContext, OutcomeView, PlanView, ResponseView
from app.plugins.decisions import (
    Authenticate,
    InvalidDecision,
    PlanChange,
    Reject,
    ResponseAdditions,
    Veto,
    decide_pre_auth,
    decide_pre_revoke,
    decide_response,
)
from app.plugins.host import Bound, Chain, PluginFailed, PluginHost

log = structlog.get_logger("revocation.plugins")

BREADTH = {"token": 0, "cie": 1, "spid": 2, "grant": 3, "subject": 4}
"""How much each cascade policy takes down, to tell narrowing from widening."""
FAIL_OPEN = "fail_open"
Phase = Literal["pre", "post"]


@dataclass(slots=True)
class Interception:
    host: PluginHost
    tenant: TenantView
    chain: Chain
    log_fields: dict[str, Any] = field(default_factory=dict)

    def with_hook(self, hook: str) -> tuple[Bound, ...]:
        return self.chain.by_hook.get(hook, ())

    # --- pre_auth ------------------------------------------------------------------------

    async def pre_auth(self, ctx: HookContext) -> tuple[Bound, Authenticate] | None:
        """The plugin that authenticated the client and its decision, or None."""
        for bound in self.with_hook("pre_auth"):
            try:
                decision = decide_pre_auth(await self._invoke(bound, "pre_auth", ctx))
            except (PluginFailed, InvalidDecision) as failure:
                await self._failed(self._as_failure(failure, bound, "pre_auth"), "pre", ctx)
                continue
            if isinstance(decision, Reject):
                self._audit_log(bound, "rejected")
                await self._record(ctx, "plugin_rejected", bound)
                raise rejection(bound, decision, ctx)
            if decision is not None:
                self._audit_log(bound, "authenticated")
                return bound, decision
        return None

    # --- pre_revoke ----------------------------------------------------------------------

    async def pre_revoke(
        self, ctx: HookContext, plan: RevocationPlan, credential: Credential | None
    ) -> RevocationPlan | None:
        """The plan to apply, or None when a plugin vetoed it."""
        cascade = plan.cause
        changes: list[PlanChange] = []
        events: list[EventDraft] = []
        current = plan
        for bound in self.with_hook("pre_revoke"):
            try:
                decision = decide_pre_revoke(
                    await self._invoke(bound, "pre_revoke", ctx, plan=PlanView(current))
                )
                if isinstance(decision, PlanChange) and decision.cascade and credential is None:
                    raise InvalidDecision("cascade needs a found credential")
            except (PluginFailed, InvalidDecision) as failure:
                await self._failed(self._as_failure(failure, bound, "pre_revoke"), "pre", ctx)
                continue
            if isinstance(decision, Veto):
                self._audit_log(bound, "veto")
                await self._record(ctx, "plugin_veto", bound)
                return None
            if decision is None:
                continue
            after = decision.cascade or cascade
            if credential is not None and credential.type is TokenType.DEVICE_SECRET:
                after = cascade  # a device secret ends its session whatever the policy
            step = BREADTH.get(after, 0) - BREADTH.get(cascade, 0)
            if not decision.widens and step == 0:
                continue
            kind = "plugin_narrowed" if step < 0 and not decision.widens else "plugin_widened"
            self._audit_log(bound, kind.removeprefix("plugin_"))
            cascade = after
            changes.append(decision)
            events.append(self._event(ctx, kind, bound, count=None))
            current = compose(plan, credential, cascade, changes, events)
        return current

    # --- post_revoke ---------------------------------------------------------------------

    async def post_revoke(
        self, ctx: HookContext, plan: RevocationPlan, outcome: RevocationOutcome
    ) -> None:
        view = OutcomeView.of(outcome, plan)
        for bound in self.with_hook("post_revoke"):
            try:
                await self._invoke(bound, "post_revoke", ctx, outcome=view)
            except PluginFailed as failure:
                if not await self._failed(failure, "post", ctx):
                    return

    # --- response_mapping ----------------------------------------------------------------

    async def response_mapping(self, ctx: HookContext, view: ResponseView) -> ResponseAdditions:
        """What the tenant's plugins add to this response, merged in order."""
        attributes: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for bound in self.with_hook("response_mapping"):
            merged = view.body if not attributes else {**attributes, **(view.body or {})}
            seen = view if not attributes else view._replace(body=merged)
            try:
                added = decide_response(
                    await self._invoke(bound, "response_mapping", ctx, response=seen)
                )
            except (PluginFailed, InvalidDecision) as failure:
                if not await self._failed(
                    self._as_failure(failure, bound, "response_mapping"), "post", ctx
                ):
                    break
                continue
            if added is not None:
                for name, value in added.attributes.items():
                    if view.body is None or name not in view.body:
                        attributes.setdefault(name, value)
                headers.update(added.headers)
        return ResponseAdditions(attributes, headers)

    # --- shared --------------------------------------------------------------------------

    async def _invoke(self, bound: Bound, hook: str, ctx: HookContext, **args: Any) -> Any:
        """One plugin call, timed into the log line's ``plugin_calls``
        (``[name, hook, milliseconds]``, whatever the outcome), which metrics read."""
        started = perf_counter()
        try:
            return await self.host.invoke(self.tenant.tenant_id, bound, hook, ctx, **args)
        finally:
            # Milliseconds to the microsecond (``round`` costs several times as much).
            elapsed_ms = int((perf_counter() - started) * 1_000_000) / 1000
            self.log_fields.setdefault("plugin_calls", []).append((bound.name, hook, elapsed_ms))

    @staticmethod
    def _as_failure(exc: Exception, bound: Bound, hook: str) -> PluginFailed:
        if isinstance(exc, PluginFailed):
            return exc
        return PluginFailed(bound, hook, "invalid_decision", str(exc))

    def _audit_log(self, bound: Bound, outcome: str) -> None:
        self.log_fields.setdefault("plugins", []).append(f"{bound.label}:{outcome}")

    async def _failed(self, failure: PluginFailed, phase: Phase, ctx: HookContext) -> bool:
        """Log, count and record a failure; True when the chain goes on."""
        bound = failure.bound
        self.host.failures[(self.tenant.tenant_id, bound.name)] += 1
        log.warning(
            "plugin_failed",
            tenant_id=self.tenant.tenant_id,
            plugin=bound.name,
            plugin_version=bound.version,
            hook=failure.hook,
            kind=failure.kind,
            detail=failure.detail,
        )
        self._audit_log(bound, f"failed:{failure.kind}")
        await self._record(ctx, "plugin_failed", bound)
        settings = self.tenant.settings
        mode = settings.failure_mode_pre if phase == "pre" else settings.failure_mode_post
        if mode == FAIL_OPEN:
            return True
        if phase == "pre":
            raise PluginUnavailable()
        return False

    def _event(
        self, ctx: HookContext, kind: str, bound: Bound, count: int | None = 0
    ) -> EventDraft:
        c = ctx.credential
        return EventDraft(
            type=kind,
            cause=bound.label,
            time=ctx.now,
            client_id=ctx.client.client_id if ctx.client else (c.client_id if c else None),
            sub=c.sub if c else ctx.params.get("sub"),
            grant_id=c.grant_id if c else None,
            token_type=c.type if c else None,
            count=count,
        )

    async def _record(self, ctx: HookContext, kind: str, bound: Bound) -> None:
        """Append an audit event on its own; a store outage loses only the event."""
        draft = self._event(ctx, kind, bound)
        try:
            await self.host.store.apply_revocation(
                self.tenant.tenant_id,
                RevocationPlan(revoked_at=ctx.now, cause=draft.cause, events=(draft,)),
            )
        except ServiceError:
            log.warning("plugin_event_lost", tenant_id=self.tenant.tenant_id, type=kind)


def rejection(bound: Bound, decision: Reject, ctx: HookContext) -> ServiceError:
    """A ``401 invalid_client`` is a failed client authentication like any other (its
    ``client_auth_id``, its log line, ``WWW-Authenticate`` after Basic); other errors
    are answered as the plugin said."""
    if decision.status == 401 and decision.error == InvalidClient.error:
        cause = f"rejected by plugin {bound.label}: {decision.description or ''}".rstrip(": ")
        client_id = ctx.params.get("client_id")
        basic = ctx.presented_auth == AuthMethod.CLIENT_SECRET_BASIC
        return InvalidClient(cause, client_id=client_id, basic=basic)
    return PluginRejected(decision.status, decision.error, decision.description)


def compose(
    plan: RevocationPlan,
    credential: Credential | None,
    cascade: str,
    changes: list[PlanChange],
    events: list[EventDraft],
) -> RevocationPlan:
    """The original plan re-planned under ``cascade``, widened by every change."""
    now = plan.revoked_at
    base = plan
    if credential is not None and cascade != plan.cause and cascade in BREADTH:
        base = plan_for(credential, cascade, now)
    selectors: list[Selector] = []
    marks: list[NotBeforeMark] = []
    for change in changes:
        for grant_id in change.grant_ids:
            selectors.append(ByGrant(grant_id, ALL_TOKEN_TYPES))
            marks.append(NotBeforeMark(MarkKind.GRANT, grant_id, now))
        for client_id, sub in change.subjects:
            selectors.append(ByClientSubject(client_id, sub, ALL_TOKEN_TYPES))
            key = client_subject_key(client_id, sub)
            marks.append(NotBeforeMark(MarkKind.CLIENT_SUBJECT, key, now))
        for session in change.device_session_ids:
            selectors.append(BySession(session, ALL_TOKEN_TYPES))
    return replace(
        base,
        selectors=tuple(dict.fromkeys((*base.selectors, *selectors))),
        marks=tuple(dict.fromkeys((*base.marks, *marks))),
        events=(*base.events, *events),
    )


def context_of(tenant: TenantView, endpoint: str, now: int, **fields: Any) -> HookContext:
    return HookContext(tenant.tenant_id, tenant.issuer, endpoint, now, **fields)
