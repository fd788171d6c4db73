"""A resource owner's authorized clients, and withdrawing one of them.

Withdrawal revokes every credential (all types) of the client for the subject, deletes
the client's grant records for the subject and sets a (client, subject) not-before mark,
so the pair's JWT access tokens issued until now fall too: one ``revoked`` event with
cause ``withdrawn``, applied in one store transaction.
"""

from __future__ import annotations

from app.admin.fields import identifier
from app.admin.tenants import require_tenant
from app.directory import TenantView
from app.models import (
    ByClientSubject,
    EventDraft,
    MarkKind,
    NotBeforeMark,
    RevocationPlan,
    SubjectClient,
)
from app.oauth.cascade import client_subject_key
from app.plugins.interception import Interception, context_of
from app.services import Services
from app.types import ClientId, TenantId

WITHDRAWN = "withdrawn"


async def subject_clients(services: Services, tenant_id: TenantId, sub: str) -> list[SubjectClient]:
    """Clients with a grant record or a live credential for ``sub``."""
    await require_tenant(services, tenant_id)
    return await services.store.subject_clients(tenant_id, identifier(sub, "sub"), services.clock())


def withdrawal_plan(client_id: ClientId, sub: str, now: int) -> RevocationPlan:
    return RevocationPlan(
        revoked_at=now,
        cause=WITHDRAWN,
        selectors=(ByClientSubject(client_id, sub),),
        delete_grants_of=((client_id, sub),),
        marks=(NotBeforeMark(MarkKind.CLIENT_SUBJECT, client_subject_key(client_id, sub), now),),
        events=(EventDraft("revoked", WITHDRAWN, now, client_id=client_id, sub=sub),),
    )


async def withdraw_client(
    services: Services, tenant_id: TenantId, sub: str, client_id: ClientId
) -> int:
    """Revoke what ``client_id`` holds for ``sub``; returns how many credentials fell.

    The client need not be registered any more: its credentials and JWTs still fall.
    The tenant's ``pre_revoke`` plugins may veto (0) or change the plan, and its
    ``post_revoke`` plugins see the outcome, as for a revocation at the endpoint.
    """
    tenant = TenantView.of(await require_tenant(services, tenant_id))
    now = services.clock()
    client_id, sub = identifier(client_id, "client_id"), identifier(sub, "sub")
    plan: RevocationPlan | None = withdrawal_plan(client_id, sub, now)
    chain = await services.plugins.chain(tenant)
    interception = Interception(services.plugins, tenant, chain) if chain else None
    ctx = context_of(tenant, "admin.withdraw", now, params={"sub": sub, "client_id": client_id})
    if interception is not None and plan is not None:
        plan = await interception.pre_revoke(ctx, plan, None)
    if plan is None:
        return 0
    outcome = await services.store.apply_revocation(tenant_id, plan)
    if interception is not None:
        await interception.post_revoke(ctx, plan, outcome)
    return outcome.count
