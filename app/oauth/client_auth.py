"""Client authentication as at a token endpoint (RFC 6749 section 2.3, RFC 7523).

A registry maps each method name to its authenticator. A request must present exactly
one method; the client must be registered for that method and the tenant must allow it.
Failures raise ``InvalidClient`` with a precise ``cause`` for the log line only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from app.directory import TenantView
from app.errors import InvalidClient, InvalidRequest
from app.keys import equal
from app.models import Client, ClientType
from app.services import Services

BASIC = "client_secret_basic"
POST = "client_secret_post"
NONE = "none"
ASSERTION = "client_assertion"
JWT_METHODS = ("client_secret_jwt", "private_key_jwt")
MAX_CLIENT_ID = 255
# Compared against when the client is unknown, so timing does not tell whether it exists.
_DUMMY_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: Client
    method: str

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def confidential(self) -> bool:
        return self.client.type is ClientType.CONFIDENTIAL


@dataclass(frozen=True, slots=True)
class Presented:
    """What the request carries: the method and the credentials for it."""

    method: str
    client_id: str | None
    secret: str | None = None


Authenticator = Callable[[Services, TenantView, Presented], Awaitable[Client]]


def presented(request: Request, form: Mapping[str, str]) -> Presented:
    """Which one method the request uses; ``InvalidRequest`` for two."""
    found: list[Presented] = []
    header = request.headers.get("authorization")
    body_client_id = form.get("client_id")
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("unsupported Authorization scheme")
        client_id, secret = _decode_basic(credentials.strip())
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        found.append(Presented(BASIC, client_id, secret))
    if "client_secret" in form:
        found.append(Presented(POST, body_client_id, form["client_secret"]))
    if ASSERTION in form or "client_assertion_type" in form:
        found.append(Presented(ASSERTION, body_client_id))
    if len(found) > 1:
        raise InvalidRequest("more than one client authentication method was used")
    if found:
        return found[0]
    if body_client_id is None:
        raise InvalidClient("no client authentication and no client_id")
    return Presented(NONE, body_client_id)


def presented_auth(request: Request, form: Mapping[str, str]) -> str | None:
    """The authentication a request carries, for plugins; never its credentials."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme = header.partition(" ")[0].lower()
        return BASIC if scheme == "basic" else scheme or None
    if "client_secret" in form:
        return POST
    if ASSERTION in form:
        return ASSERTION
    return NONE if "client_id" in form else None


async def by_plugin(
    services: Services, tenant: TenantView, client_id: str, plugin: str
) -> AuthenticatedClient:
    """The client a ``pre_auth`` plugin vouched for: it must exist and be enabled."""
    client = await services.directory.client(tenant.tenant_id, client_id)
    if client is None or not client.enabled:
        raise InvalidClient(f"plugin {plugin} named an unknown or disabled client")
    return AuthenticatedClient(client, f"plugin:{plugin}")


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials", basic=True) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed Basic credentials", basic=True)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


async def _find_client(services: Services, tenant: TenantView, p: Presented) -> Client:
    basic = p.method == BASIC
    if not p.client_id or len(p.client_id) > MAX_CLIENT_ID:
        raise InvalidClient("missing or invalid client_id", basic=basic)
    client = await services.directory.client(tenant.tenant_id, p.client_id)
    if client is None:
        if p.secret is not None:
            services.keys.secret_hash(tenant.tenant_id, tenant.record.key_salt, p.secret)
            equal(_DUMMY_HASH, _DUMMY_HASH)
        raise InvalidClient("unknown client", client_id=p.client_id, basic=basic)
    if not client.enabled:
        raise InvalidClient("client is disabled", client_id=p.client_id, basic=basic)
    return client


async def _secret(services: Services, tenant: TenantView, p: Presented) -> Client:
    client = await _find_client(services, tenant, p)
    basic = p.method == BASIC
    if not p.secret:
        raise InvalidClient("empty client secret", client_id=client.client_id, basic=basic)
    given = services.keys.secret_hash(tenant.tenant_id, tenant.record.key_salt, p.secret)
    if not equal(given, client.secret_hash or _DUMMY_HASH) or client.secret_hash is None:
        raise InvalidClient("invalid client secret", client_id=client.client_id, basic=basic)
    return client


async def _none(services: Services, tenant: TenantView, p: Presented) -> Client:
    return await _find_client(services, tenant, p)


async def _assertion(services: Services, tenant: TenantView, p: Presented) -> Client:
    raise InvalidClient("client assertions (RFC 7523) are not supported yet", client_id=p.client_id)


AUTHENTICATORS: dict[str, Authenticator] = {BASIC: _secret, POST: _secret, NONE: _none}
"""Method name → authenticator. The JWT methods join when RFC 7523 support lands."""

SUPPORTED_METHODS: tuple[str, ...] = (BASIC, POST, NONE)


async def authenticate(
    services: Services, tenant: TenantView, request: Request, form: Mapping[str, str]
) -> AuthenticatedClient:
    p = presented(request, form)
    authenticator = AUTHENTICATORS.get(p.method, _assertion)
    client = await authenticator(services, tenant, p)
    basic = p.method == BASIC
    if p.method not in tenant.settings.auth_methods:
        raise InvalidClient(
            f"{p.method} is switched off for this tenant", client_id=client.client_id, basic=basic
        )
    if client.token_endpoint_auth_method != p.method:
        raise InvalidClient(
            f"client is registered for {client.token_endpoint_auth_method}, not {p.method}",
            client_id=client.client_id,
            basic=basic,
        )
    return AuthenticatedClient(client, p.method)
