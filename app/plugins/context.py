"""What hooks receive: the request's context and views of the plan, outcome and response.

Every view has a ``to_wire()`` JSON form, which is all that untrusted (sandboxed) code
ever gets: never a token value, a client secret, an assertion, a token hash or another
tenant's data. Trusted operator plugins get the same objects plus ``context.trusted``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from app.models import (
    ByClient,
    ByClientSubject,
    ByGrant,
    ByHash,
    BySession,
    Client,
    Credential,
    RevocationOutcome,
    RevocationPlan,
    Selector,
)
from app.types import JSON

SECRET_PARAMS = frozenset({"token", "client_secret", "client_assertion"})
"""Form parameters never handed to a plugin."""
EMPTY: Mapping[str, Any] = MappingProxyType({})


class ClientInfo(NamedTuple):
    client_id: str
    type: str
    auth_method: str
    scope: tuple[str, ...]

    @classmethod
    def of(cls, client: Client, auth_method: str) -> ClientInfo:
        return cls(client.client_id, client.type.value, auth_method, tuple(sorted(client.scope)))

    def to_wire(self) -> JSON:
        return {
            "client_id": self.client_id,
            "type": self.type,
            "auth_method": self.auth_method,
            "scope": list(self.scope),
        }


class CredentialInfo(NamedTuple):
    """The found credential's metadata (never the token or its hash)."""

    type: str
    client_id: str
    exp: int
    sub: str | None
    grant_id: str | None
    device_session_id: str | None
    scope: str | None
    iat: int | None
    revoked: bool

    @classmethod
    def of(cls, c: Credential) -> CredentialInfo:
        return cls(
            c.type.value,
            c.client_id,
            c.exp,
            c.sub,
            c.grant_id,
            c.device_session_id,
            c.scope,
            c.iat,
            c.revoked_at is not None,
        )

    def to_wire(self) -> JSON:
        return {
            "type": self.type,
            "client_id": self.client_id,
            "exp": self.exp,
            "sub": self.sub,
            "grant_id": self.grant_id,
            "device_session_id": self.device_session_id,
            "scope": self.scope,
            "iat": self.iat,
            "revoked": self.revoked,
        }


@dataclass(frozen=True, slots=True)
class TrustedAccess:
    """What only in-process operator plugins get: the raw ``Authorization`` header and a
    lookup of a presented token in this tenant."""

    authorization: str | None
    find_credential: Callable[[str], Awaitable[CredentialInfo | None]]


@dataclass(slots=True)
class HookContext:
    tenant_id: str
    issuer: str
    endpoint: str
    """``revocation``, ``introspection`` or ``admin.withdraw``."""
    now: int
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    """The request's form parameters without ``SECRET_PARAMS``."""
    presented_auth: str | None = None
    """The client authentication the request carries: ``client_secret_basic``,
    ``client_secret_post``, ``client_assertion``, ``bearer``, ``none`` or ``None``."""
    client: ClientInfo | None = None
    credential: CredentialInfo | None = None
    config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    """This plugin's configuration in this tenant (``plugins.enabled[i].config``)."""
    trusted: TrustedAccess | None = field(default=None, compare=False)

    def for_plugin(self, config: Mapping[str, Any]) -> HookContext:
        """This context with one plugin's configuration (``replace`` costs more)."""
        return HookContext(
            self.tenant_id,
            self.issuer,
            self.endpoint,
            self.now,
            self.params,
            self.presented_auth,
            self.client,
            self.credential,
            config,
            self.trusted,
        )

    def to_wire(self) -> JSON:
        return {
            "tenant_id": self.tenant_id,
            "issuer": self.issuer,
            "endpoint": self.endpoint,
            "now": self.now,
            "params": dict(self.params),
            "presented_auth": self.presented_auth,
            "client": self.client.to_wire() if self.client else None,
            "credential": self.credential.to_wire() if self.credential else None,
            "config": dict(self.config),
        }


def public_params(form: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType({k: v for k, v in form.items() if k not in SECRET_PARAMS})


def selector_wire(selector: Selector) -> JSON:
    match selector:
        case ByHash():
            return {"by": "token"}
        case ByGrant(grant_id, types):
            return {"by": "grant", "grant_id": grant_id, "types": sorted(types)}
        case ByClientSubject(client_id, sub, types):
            return {
                "by": "client_subject",
                "client_id": client_id,
                "sub": sub,
                "types": sorted(types),
            }
        case ByClient(client_id):
            return {"by": "client", "client_id": client_id}
        case BySession(device_session_id, types):
            return {"by": "session", "device_session_id": device_session_id, "types": sorted(types)}


class PlanView(NamedTuple):
    """What a revocation would take down, as ``pre_revoke`` sees it."""

    plan: RevocationPlan

    @property
    def cause(self) -> str:
        return self.plan.cause

    @property
    def selectors(self) -> tuple[JSON, ...]:
        # A JWT's plan denies it where a registered credential's revokes its row: either
        # way the presented token falls, and a plugin sees it so.
        own: tuple[JSON, ...] = ({"by": "token"},) if self.plan.primary_deny else ()
        return (*own, *(selector_wire(s) for s in self.plan.selectors))

    def to_wire(self) -> JSON:
        return {
            "cause": self.plan.cause,
            "selectors": list(self.selectors),
            "end_sessions": list(self.plan.end_sessions),
            "delete_grants_of": [{"client_id": c, "sub": s} for c, s in self.plan.delete_grants_of],
        }


@dataclass(frozen=True, slots=True)
class OutcomeView:
    applied: bool
    count: int
    cause: str
    event_ids: tuple[int, ...]

    @classmethod
    def of(cls, outcome: RevocationOutcome, plan: RevocationPlan) -> OutcomeView:
        return cls(outcome.applied, outcome.count, plan.cause, outcome.event_ids)

    def to_wire(self) -> JSON:
        return {
            "applied": self.applied,
            "count": self.count,
            "cause": self.cause,
            "event_ids": [str(i) for i in self.event_ids],
        }


class ResponseView(NamedTuple):
    status: int
    body: JSON | None

    def to_wire(self) -> JSON:
        return {"status": self.status, "body": self.body}
