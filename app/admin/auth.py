"""Who is calling the admin API: the operator, or one tenant's admin key.

``Authorization: Bearer <key>``. The operator's key (``Services.operator_key``) reaches
everything. A tenant admin key has the form ``rtk_<tenant_id>_<key_id>_<secret>``: the
tenant and key id let it be looked up (``Store.get_admin_key``) and its keyed hash is
compared in constant time; only the hash is stored. A tenant key reaches only its own
tenant's clients, credentials, grants, subjects, events, receivers and settings (not ``issuer``,
``issuer_aliases`` or ``enabled``); anything else is ``403``. No key or an unknown key is
``401`` with ``WWW-Authenticate: Bearer``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from app.errors import Forbidden, Unauthorized
from app.keys import equal
from app.services import Services
from app.settings import TENANT_ID_RE
from app.types import TenantId

TENANT_KEY_PREFIX = "rtk_"
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
PROTECTED_SETTINGS = ("issuer", "issuer_aliases", "enabled")
"""Top-level settings only the operator may change."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The operator (``tenant_id is None``) or the holder of one tenant's admin key."""

    tenant_id: TenantId | None = None
    key_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.tenant_id is None


OPERATOR = Principal()


def new_tenant_key(tenant_id: TenantId) -> tuple[str, str]:
    """A fresh ``(key_id, key)`` for ``tenant_id``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{TENANT_KEY_PREFIX}{tenant_id}_{key_id}_{secrets.token_urlsafe(32)}"


def parse_tenant_key(key: str) -> tuple[TenantId, str] | None:
    """``(tenant_id, key_id)`` of a key in the tenant key format, else None."""
    if not key.startswith(TENANT_KEY_PREFIX):
        return None
    parts = key[len(TENANT_KEY_PREFIX) :].split("_", 2)
    if len(parts) != 3 or not parts[2]:
        return None
    tenant_id, key_id, _ = parts
    if not TENANT_ID_RE.match(tenant_id) or not KEY_ID_RE.match(key_id):
        return None
    return tenant_id, key_id


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("an admin key is required (Authorization: Bearer <key>)", None)
    return value.strip()


async def authenticate(services: Services, request: Request) -> Principal:
    key = bearer(request)
    if equal(key, services.operator_key):
        return OPERATOR
    named = parse_tenant_key(key)
    stored = await services.store.get_admin_key(*named) if named else None
    given = services.keys.admin_key_hash(key, like=stored.key_hash if stored else None)
    if named is None or stored is None or not equal(given, stored.key_hash):
        raise _unauthorized("unknown admin key", "invalid_token")
    return Principal(tenant_id=named[0], key_id=named[1])


def authorize(principal: Principal, tenant_id: TenantId | None, *, tenant_key: bool) -> None:
    """Raise ``Forbidden`` unless ``principal`` may use a route of ``tenant_id``.

    ``tenant_key``: whether the route is open to the tenant's own admin keys at all.
    """
    if principal.is_operator:
        return
    if not tenant_key or tenant_id is None:
        raise Forbidden("this operation needs the operator's admin key")
    if principal.tenant_id != tenant_id:
        raise Forbidden("this admin key belongs to another tenant")


def check_settings_patch(principal: Principal, names: Iterable[str]) -> None:
    """A tenant key may not change the tenant's issuer, aliases or enabled flag."""
    if principal.is_operator:
        return
    touched = sorted(set(names) & set(PROTECTED_SETTINGS))
    if touched:
        raise Forbidden(f"only the operator may change {', '.join(touched)}")


def _unauthorized(description: str, error: str | None) -> Unauthorized:
    exc = Unauthorized(description)
    challenge = 'Bearer realm="revocation-admin"'
    if error:
        challenge += f', error="{error}"'
    exc.headers["WWW-Authenticate"] = challenge
    return exc
