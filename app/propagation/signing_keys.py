"""The tenant's own signing keys: Security Event Tokens and the Token Status List are
signed with them, and ``{issuer}/jwks`` publishes them (``app.propagation.jwks``).

One key is current (ES256 on P-256, ``kid`` its RFC 7638 thumbprint); a tenant's first
key is made on its first signature, never by an anonymous read. A rotation makes a new
key current and keeps the previous one published until ``now + overlap``, so a receiver
that fetched the key set before the rotation, or holds a token signed just before it,
still verifies; housekeeping drops keys a day after they stop being published.

The private key is kept sealed under the tenant's key (``KeyRing.seal_secret``, bound to
``signing-key:<kid>``). Each process caches the key list per tenant for the
configuration version its ``Directory`` holds (key writes move it), and the opened
private keys per (tenant, kid): signing costs no store read in the steady state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec

from app.directory import Directory, TenantView
from app.errors import NotFound
from app.keys import KeyRing
from app.models import Event, Receiver, SigningKey, Tenant
from app.process_caches import ProcessCaches
from app.propagation import jwk
from app.propagation.rfc8417 import SET_TYP, security_event_claims
from app.services import Services
from app.types import TenantId

DEFAULT_OVERLAP_S = 7 * 86_400
"""How long a rotated-out key stays published: longer than any receiver caches a key set
and than a signed status list lives."""
MAX_OVERLAP_S = 365 * 86_400
DROP_AFTER_S = 86_400
"""Housekeeping drops a key this long after it stopped being published."""
MAX_OPENED = 10_000
"""Opened private keys kept per process; beyond, the cache starts again."""


class SigningKeyUnavailable(Exception):
    """The stored private key opens under no master key of the ring (one was retired
    while it still sealed the key): rotate the tenant's signing key."""


def sealing_context(kid: str) -> str:
    """What a sealed private key is bound to: it opens for this kid only."""
    return f"signing-key:{kid}"


@dataclass(slots=True)
class _Cache:
    """One process's keys, for one ``Directory`` (one store)."""

    lists: dict[TenantId, tuple[int, list[SigningKey]]] = field(default_factory=dict)
    opened: dict[tuple[TenantId, str], ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    def forget(self, tenant_id: TenantId) -> None:
        self.lists.pop(tenant_id, None)

    def keep(self, tenant_id: TenantId, kid: str, key: ec.EllipticCurvePrivateKey) -> None:
        if len(self.opened) >= MAX_OPENED:
            self.opened.clear()
        self.opened[(tenant_id, kid)] = key


_caches: ProcessCaches[Directory, _Cache] = ProcessCaches(_Cache)


def _cache(services: Services) -> _Cache:
    return _caches.of(services.directory)


@dataclass(frozen=True, slots=True)
class _NewKey:
    record: SigningKey
    private: ec.EllipticCurvePrivateKey


def _new_key(keys: KeyRing, tenant: Tenant, now: int) -> _NewKey:
    private = jwk.generate()
    public = jwk.public_jwk(private.public_key())
    kid: str = public["kid"]
    sealed = keys.seal_secret(
        tenant.tenant_id, tenant.key_salt, jwk.private_pem(private), sealing_context(kid)
    )
    return _NewKey(SigningKey(tenant.tenant_id, kid, jwk.ALG, public, sealed, now), private)


async def signing_keys(services: Services, tenant_id: TenantId) -> list[SigningKey]:
    """The tenant's kept keys, current first: cached for the tenant's configuration
    version in the process's ``Directory``."""
    cache = _cache(services)
    version = services.directory.tenant_version(tenant_id)
    cached = cache.lists.get(tenant_id)
    if version is not None and cached is not None and cached[0] == version:
        return cached[1]
    found = await services.store.list_signing_keys(tenant_id)
    if version is not None:
        cache.lists[tenant_id] = (version, found)
    return found


async def current_key(services: Services, tenant: TenantView) -> SigningKey:
    """The tenant's current key; on first use, a new one (of two processes making the
    first key at once, the store keeps one and both use it)."""
    keys = await signing_keys(services, tenant.tenant_id)
    if keys and keys[0].retire_at is None:
        return keys[0]
    made = _new_key(services.keys, tenant.record, services.clock())
    stored = await services.store.add_signing_key(made.record, None)
    cache = _cache(services)
    cache.forget(tenant.tenant_id)
    if stored.kid == made.record.kid:
        cache.keep(tenant.tenant_id, stored.kid, made.private)
    return stored


def _private_key(services: Services, salt: bytes, key: SigningKey) -> ec.EllipticCurvePrivateKey:
    cache = _cache(services)
    found = cache.opened.get((key.tenant_id, key.kid))
    if found is not None:
        return found
    try:
        pem = services.keys.open_secret(
            key.tenant_id, salt, key.sealed_private, sealing_context(key.kid)
        )
    except InvalidTag:
        raise SigningKeyUnavailable(
            f"signing key {key.kid} of tenant {key.tenant_id} opens under no master key"
        ) from None
    opened = jwk.load_private_pem(pem)
    cache.keep(key.tenant_id, key.kid, opened)
    return opened


async def sign(services: Services, tenant: TenantView, claims: dict[str, Any], typ: str) -> str:
    """``claims`` as a compact JWS with the tenant's current key: header ``alg`` ES256,
    ``kid``, ``typ``."""
    key = await current_key(services, tenant)
    private = _private_key(services, tenant.record.key_salt, key)
    return jwt.encode(claims, private, algorithm=jwk.ALG, headers={"kid": key.kid, "typ": typ})


def is_published(key: SigningKey, now: int) -> bool:
    """The current key, and a retired one until its ``retire_at``."""
    return key.retire_at is None or key.retire_at > now


async def published_jwks(services: Services, tenant: TenantView, now: int) -> dict[str, Any]:
    """``{"keys": [...]}``: the public JWKs of the current key and of the retired keys
    still published; empty before the tenant's first signature."""
    keys = await signing_keys(services, tenant.tenant_id)
    return {"keys": [jwk.published(k.public_jwk) for k in keys if is_published(k, now)]}


async def rotate(
    services: Services, tenant_id: TenantId, now: int, overlap_s: int = DEFAULT_OVERLAP_S
) -> list[SigningKey]:
    """A new current key; the previous one stays published until ``now + overlap_s``.
    The tenant's keys afterwards, current first. ``NotFound`` without the tenant."""
    tenant = await services.store.get_tenant(tenant_id)
    if tenant is None:
        raise NotFound("no such tenant")
    made = _new_key(services.keys, tenant, now)
    await services.store.add_signing_key(made.record, now + overlap_s)
    cache = _cache(services)
    cache.forget(tenant_id)
    cache.keep(tenant_id, made.record.kid, made.private)
    return await services.store.list_signing_keys(tenant_id)


async def reseal(services: Services, tenant: Tenant) -> tuple[int, int]:
    """Seal the tenant's private keys under the current master key (a master key
    rotation, ``app.admin.key_rotation``): how many were sealed again, and how many no
    key of the ring opens."""
    keys, store = services.keys, services.store
    current = keys.current.id
    resealed = unopened = 0
    for key in await store.list_signing_keys(tenant.tenant_id):
        context = sealing_context(key.kid)
        version = keys.seal_version(tenant.tenant_id, tenant.key_salt, key.sealed_private, context)
        if version is None:
            unopened += 1
            continue
        if version == current:
            continue
        pem = keys.open_secret(tenant.tenant_id, tenant.key_salt, key.sealed_private, context)
        again = keys.seal_secret(tenant.tenant_id, tenant.key_salt, pem, context)
        resealed += await store.reseal_signing_key(key, again)
    _cache(services).forget(tenant.tenant_id)
    return resealed, unopened


def seal_versions(services: Services, tenant: Tenant, keys: list[SigningKey]) -> list[int | None]:
    """The master key version that sealed each key (None: no key of the ring opens it)."""
    return [
        services.keys.seal_version(
            tenant.tenant_id, tenant.key_salt, k.sealed_private, sealing_context(k.kid)
        )
        for k in keys
    ]


async def sign_event(
    services: Services, tenant: TenantView, receiver: Receiver, event: Event, now: int
) -> str:
    """The Security Event Token that tells ``receiver`` of ``event``, issued at ``now``."""
    claims = security_event_claims(tenant, event, receiver.set_audience, receiver.receiver_id, now)
    return await sign(services, tenant, claims, SET_TYP)
