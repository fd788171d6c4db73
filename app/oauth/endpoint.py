"""What the public OAuth endpoints share: their context, step runner and error rendering."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import Response

from app.directory import TenantView
from app.errors import InvalidClient, ServiceError
from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.models import Credential, TokenType
from app.oauth.client_auth import AuthenticatedClient
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


Step = Callable[[Exchange], Awaitable[None]]


async def run(exchange: Exchange, steps: Sequence[Step]) -> Response:
    try:
        for step in steps:
            await step(exchange)
            if exchange.response is not None:
                return exchange.response
    except ServiceError as exc:
        return render_error(exchange, exc)
    raise AssertionError(f"{exchange.endpoint}: no step answered")


def render_error(exchange: Exchange, exc: ServiceError) -> Response:
    exchange.log(error=exc.error)
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
