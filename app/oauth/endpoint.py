"""What the public OAuth endpoints share: their context, step runner and error rendering."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from app.directory import TenantView
from app.errors import InvalidClient, ServiceError
from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.models import Credential, RevocationOutcome, RevocationPlan, TokenType
from app.oauth import token_finder
from app.oauth.client_auth import AuthenticatedClient, presented_auth
from app.plugins.context import (
    ClientInfo,
    CredentialInfo,
    HookContext,
    TrustedAccess,
    public_params,
)
from app.plugins.interception import Interception
from app.responses import error_response
from app.services import Services

log = structlog.get_logger("revocation.oauth")


@dataclass(slots=True)
class Exchange:
    """One request to a public endpoint as it moves through the steps."""

    request: Request
    services: Services
    tenant: TenantView
    endpoint: str
    now: int
    form: dict[str, str] = field(default_factory=dict)
    client: AuthenticatedClient | None = None
    token: str = ""
    hint: TokenType | str | None = None
    credential: Credential | None = None
    plan: RevocationPlan | None = None
    outcome: RevocationOutcome | None = None
    interception: Interception | None = None
    """The tenant's enabled plugins; None when it has none."""
    context: HookContext | None = None
    context_for: tuple[object, object] = (None, None)
    response: Response | None = None
    """Set by a step that answers early; later steps are skipped."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, request: Request, endpoint: str) -> Exchange:
        services: Services = request.app.state.services
        log_fields(request.scope)["endpoint"] = endpoint
        return cls(request, services, request.scope[TENANT_KEY], endpoint, services.clock())

    @property
    def authenticated(self) -> AuthenticatedClient:
        assert self.client is not None, "step order: authenticate_client runs first"
        return self.client

    def log(self, **fields: Any) -> None:
        log_fields(self.request.scope).update(fields)

    def hook_context(self) -> HookContext:
        """What this request's plugins are told (see ``app.plugins.context``): built once,
        and again only when the client or the credential is new since."""
        cached = self.context
        client, credential = self.client, self.credential
        # Identity, not equality: comparing the records field by field costs more than
        # the context.
        known_client, known_credential = self.context_for
        if cached is not None and known_client is client and known_credential is credential:
            return cached
        self.context_for = (client, credential)
        client_info = ClientInfo.of(client.client, client.method) if client else None
        credential_info = CredentialInfo.of(credential) if credential else None
        if cached is None:
            self.context = HookContext(
                self.tenant.tenant_id,
                self.tenant.issuer,
                self.endpoint,
                self.now,
                public_params(self.form),
                presented_auth(self.request, self.form),
                client_info,
                credential_info,
                # A partial, not a bound method: a context that points back at the exchange
                # holding it is a reference cycle per request, left to the garbage collector.
                trusted=TrustedAccess(
                    self.request.headers.get("authorization"),
                    partial(find_credential_info, self.services, self.tenant),
                ),
            )
        else:
            self.context = HookContext(
                cached.tenant_id,
                cached.issuer,
                cached.endpoint,
                cached.now,
                cached.params,
                cached.presented_auth,
                client_info,
                credential_info,
                cached.config,
                cached.trusted,
            )
        return self.context


async def find_credential_info(
    services: Services, tenant: TenantView, token: str
) -> CredentialInfo | None:
    found = await token_finder.find(services, tenant, token, services.clock())
    return None if found is None else CredentialInfo.of(found)


Step = Callable[[Exchange], Awaitable[None]]


async def run(exchange: Exchange, steps: Sequence[Step], finally_: Sequence[Step] = ()) -> Response:
    """The steps until one answers; an error answers instead; ``finally_`` runs after
    either and must not raise."""
    try:
        for step in steps:
            await step(exchange)
            if exchange.response is not None:
                break
        else:
            raise AssertionError(f"{exchange.endpoint}: no step answered")
    except ServiceError as exc:
        exchange.response = render_error(exchange, exc)
    for step in finally_:
        await step(exchange)
    assert exchange.response is not None
    return exchange.response


def render_error(exchange: Exchange, exc: ServiceError) -> Response:
    exchange.log(error=exc.error)
    if exc.description and not isinstance(exc, InvalidClient):
        # Why, in the canonical line. A failed authentication's description is generic
        # on purpose; its cause goes to the client_auth_failed line below.
        exchange.log(error_description=exc.description)
    if isinstance(exc, InvalidClient):
        client_auth_id = secrets.token_urlsafe(12)
        log.warning(
            "client_auth_failed",
            cause=exc.cause,
            client_id=exc.client_id,
            client_auth_id=client_auth_id,
            endpoint=exchange.endpoint,
        )
        exchange.log(client_auth_id=client_auth_id, client_id=exc.client_id)
        exc.extra["client_auth_id"] = client_auth_id
        if exc.basic:
            exc.headers["WWW-Authenticate"] = f'Basic realm="{exchange.tenant.issuer}"'
    return error_response(exc)
