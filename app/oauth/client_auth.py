"""Client authentication as at a token endpoint (RFC 6749 section 2.3, RFC 7523).

The request's mechanism gives the candidate methods: a Basic header is
``client_secret_basic``, a ``client_secret`` in the body ``client_secret_post``, a
``client_assertion`` ``client_secret_jwt`` or ``private_key_jwt``, a bare ``client_id``
``none``. The client is found, and its registered method decides: it must be one of the
candidates and allowed by the tenant's ``auth.methods``, and then its authenticator (a
registry from method to function) runs. Failures raise ``InvalidClient`` with a precise
``cause`` for the log line only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote_plus

from starlette.requests import Request

from app.auth_methods import JWT_METHODS, AuthMethod
from app.directory import TenantView
from app.errors import InvalidClient, InvalidRequest
from app.keys import equal, hash_version
from app.models import Client, ClientType
from app.oauth import rfc7523
from app.services import Services

ASSERTION = "client_assertion"
"""What ``presented_auth`` tells plugins of a request with a client assertion."""
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
    """What the request carries: the credentials, and the methods they can be."""

    candidates: frozenset[AuthMethod]
    client_id: str | None
    secret: str | None = None
    assertion: str | None = None

    @property
    def basic(self) -> bool:
        """Basic was tried: a refusal says so with ``WWW-Authenticate``."""
        return AuthMethod.CLIENT_SECRET_BASIC in self.candidates

    def describe(self) -> str:
        return " or ".join(sorted(self.candidates))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One client's authentication, as its authenticator sees it."""

    services: Services
    tenant: TenantView
    client: Client
    method: AuthMethod
    presented: Presented
    secret_hash: bytes | None
    """The keyed hash of the presented secret, computed before the client was looked up."""
    endpoint_path: str
    """The path of the endpoint called, below the issuer (an assertion's ``aud``)."""
    now: int

    def refuse(self, cause: str) -> InvalidClient:
        return InvalidClient(cause, client_id=self.client.client_id, basic=self.presented.basic)


Authenticator = Callable[[Attempt], Awaitable[None]]


def presented(request: Request, form: Mapping[str, str]) -> Presented:
    """What the request presents; ``InvalidRequest`` for two mechanisms at once, or a
    ``client_id`` that names another client than the credentials."""
    header = request.headers.get("authorization")
    body_client_id = form.get("client_id")
    with_secret = "client_secret" in form
    with_assertion = ASSERTION in form or "client_assertion_type" in form
    if (header is not None) + with_secret + with_assertion > 1:
        raise InvalidRequest("more than one client authentication method was used")
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            raise InvalidClient("unsupported Authorization scheme")
        client_id, secret = _decode_basic(credentials.strip())
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client")
        return Presented(frozenset({AuthMethod.CLIENT_SECRET_BASIC}), client_id, secret)
    if with_secret:
        methods = frozenset({AuthMethod.CLIENT_SECRET_POST})
        return Presented(methods, body_client_id, form["client_secret"])
    if with_assertion:
        assertion = rfc7523.read_assertion(form)
        client_id = rfc7523.claimed_client(assertion)
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidRequest("client_id does not match the client assertion")
        return Presented(JWT_METHODS, client_id, assertion=assertion)
    if body_client_id is None:
        raise InvalidClient("no client authentication and no client_id")
    return Presented(frozenset({AuthMethod.NONE}), body_client_id)


def presented_auth(request: Request, form: Mapping[str, str]) -> str | None:
    """The authentication a request carries, for plugins; never its credentials."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme = header.partition(" ")[0].lower()
        return AuthMethod.CLIENT_SECRET_BASIC.value if scheme == "basic" else scheme or None
    if "client_secret" in form:
        return AuthMethod.CLIENT_SECRET_POST.value
    if ASSERTION in form:
        return ASSERTION
    return AuthMethod.NONE.value if "client_id" in form else None


async def by_plugin(
    services: Services, tenant: TenantView, client_id: str, plugin: str
) -> AuthenticatedClient:
    """The client a ``pre_auth`` plugin vouched for: it must exist and be enabled."""
    client = await services.directory.client(tenant.tenant_id, client_id)
    if client is None or not client.enabled:
        raise InvalidClient(f"plugin {plugin} named an unknown or disabled client")
    return AuthenticatedClient(client, f"plugin:{plugin}")


def _decode_basic(credentials: str) -> tuple[str, str]:
    """``client_id`` and secret of a Basic header's credentials; ``InvalidClient`` (after
    Basic) for anything that is not base64 of ``id:secret`` in UTF-8, each part
    form-urlencoded (RFC 6749 section 2.3.1) and decoding to UTF-8 too. The cause names
    the problem, never the bytes (they may be part of a secret)."""
    try:
        # Header values reach us as Latin-1 text: a byte above 0x7f is no base64 digit.
        raw = base64.b64decode(credentials.encode("ascii"), validate=True)
        client_id, colon, secret = raw.decode("utf-8").partition(":")
        if colon:
            return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
        problem = "no colon"
    except UnicodeEncodeError:
        problem = "not ASCII"
    except binascii.Error:
        problem = "not base64"
    except UnicodeDecodeError:
        problem = "not UTF-8, or percent-encodes what is not"
    raise InvalidClient(f"malformed Basic credentials: {problem}", basic=True)


async def _find_client(services: Services, tenant: TenantView, p: Presented) -> Client:
    if not p.client_id or len(p.client_id) > MAX_CLIENT_ID:
        raise InvalidClient("missing or invalid client_id", basic=p.basic)
    client = await services.directory.client(tenant.tenant_id, p.client_id)
    if client is None:
        if p.secret is not None:
            equal(_DUMMY_HASH, _DUMMY_HASH)
        raise InvalidClient("unknown client", client_id=p.client_id, basic=p.basic)
    if not client.enabled:
        raise InvalidClient("client is disabled", client_id=p.client_id, basic=p.basic)
    return client


async def _secret(a: Attempt) -> None:
    if not a.presented.secret or a.secret_hash is None:
        raise a.refuse("empty client secret")
    stored = a.client.secret_hash
    given = a.secret_hash
    if stored is not None and hash_version(stored) != hash_version(given):
        # Hashed under an older master key (``app.keys``): compare under that key.
        given = a.services.keys.secret_hash(
            a.tenant.tenant_id, a.tenant.record.key_salt, a.presented.secret, like=stored
        )
    if not equal(given, stored or _DUMMY_HASH) or stored is None:
        raise a.refuse("invalid client secret")


async def _none(a: Attempt) -> None:
    """A public client: naming it is all there is."""


async def _assertion(a: Attempt) -> None:
    assert a.presented.assertion is not None, "the candidates say an assertion was presented"
    await rfc7523.verify(
        a.services,
        a.tenant,
        a.client,
        a.method,
        a.presented.assertion,
        rfc7523.audiences(a.tenant, a.endpoint_path),
        a.now,
    )


AUTHENTICATORS: dict[AuthMethod, Authenticator] = {
    AuthMethod.CLIENT_SECRET_BASIC: _secret,
    AuthMethod.CLIENT_SECRET_POST: _secret,
    AuthMethod.CLIENT_SECRET_JWT: _assertion,
    AuthMethod.PRIVATE_KEY_JWT: _assertion,
    AuthMethod.NONE: _none,
}
"""Registered method → authenticator."""


async def authenticate(
    services: Services,
    tenant: TenantView,
    request: Request,
    form: Mapping[str, str],
    *,
    endpoint_path: str,
    now: int,
) -> AuthenticatedClient:
    p = presented(request, form)
    # Hashed before the lookup, whatever follows: an unknown client, a client registered
    # for another method and a wrong secret then cost the same.
    secret_hash = None
    if p.secret is not None:
        secret_hash = services.keys.secret_hash(tenant.tenant_id, tenant.record.key_salt, p.secret)
    client = await _find_client(services, tenant, p)
    registered = client.token_endpoint_auth_method
    if registered not in p.candidates:
        raise InvalidClient(
            f"client is registered for {registered}, not {p.describe()}",
            client_id=client.client_id,
            basic=p.basic,
        )
    method = AuthMethod(registered)
    if method not in tenant.settings.auth_methods:
        raise InvalidClient(
            f"{method} is switched off for this tenant", client_id=client.client_id, basic=p.basic
        )
    attempt = Attempt(services, tenant, client, method, p, secret_hash, endpoint_path, now)
    await AUTHENTICATORS[method](attempt)
    return AuthenticatedClient(client, method.value)
