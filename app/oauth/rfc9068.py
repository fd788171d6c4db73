"""JWT access tokens (RFC 9068) and JWT device secrets, presented at revocation or
introspection (CONTRACT.md section 4.1, "JWT access tokens").

They are never registered: a presented token that is not a registered credential, in a
tenant with ``jwt_access_tokens`` keys, is tried as a JWS (RFC 7515 compact form) and
verified with PyJWT. What checks out becomes a ``JwtCredential``; what does not is
unknown to the caller (200 at revocation, ``active: false`` at introspection), whatever
the reason, which is noted in the request's log line only.

What is checked, and why:

- the algorithm is asymmetric (``ALGORITHMS``): never ``none``, never HMAC, whose
  secret would be the tenant's *public* key (algorithm confusion); the key is the
  tenant's key of the header's ``kid`` and its type must fit the algorithm (an RSA key
  for RS*/PS*, the algorithm's curve for ES*, an OKP key for EdDSA), and a key whose
  JWK names another algorithm is not used;
- ``typ`` (RFC 8725 section 3.11, RFC 9068 section 2.1), compared as a media type:
  absent, ``JWT`` or ``at+jwt`` is an access token; the tenant's
  ``device_secret_typ`` is a device secret; anything else (an ID token's, a logout or
  security event token's) is not ours to revoke; ``crit`` is refused, as no extension
  is understood;
- ``iss`` is the tenant's issuer, compared in its normal form (``app.issuers``); its
  aliases, which name the tenant in requests, are not accepted as issuers;
- ``exp`` is required, and past at the service's clock means unknown (expired);
- a lifetime over the tenant's ``retention.max_token_lifetime_s`` means unknown too
  (``outlives``): housekeeping forgets not-before marks and ended sessions after that
  lifetime, so a longer-lived token could otherwise come back to life.

The client is ``client_id`` (RFC 9068 section 2.2), or ``azp`` when there is none (as
some servers issue them); without either a JWT is unknown, since nobody could be
checked as its owner. The deny key is ``jti:`` + ``jti``, or ``sha256:`` + the token's
hex SHA-256 without a ``jti``: the prefixes keep a ``jti`` that happens to look like a
hash apart from the hash of another token; the token itself is never stored.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    EllipticCurvePrivateKey,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from app.directory import TenantView
from app.errors import TemporarilyUnavailable
from app.issuers import normalize_issuer
from app.key_sets import KeySetUnavailable, KeySource
from app.models import JwtCredential, TokenType
from app.oauth.cascade import covering_marks
from app.services import Services
from app.store.base import Store

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
ALGORITHMS = RSA_ALGORITHMS | set(EC_CURVES) | {"EdDSA"}
"""Asymmetric JWS algorithms only."""
ACCESS_TOKEN_TYPS = frozenset({"jwt", "at+jwt"})
"""``typ`` values of an access token, in ``media_type`` form (absent is one too)."""
JWS_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
JTI_PREFIX = "jti:"
SHA256_PREFIX = "sha256:"
MAX_TIME = 2**53

DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "require": ["exp", "iss"],
    # Times are checked against the service's clock below, the issuer in its normal
    # form, and an access token has no audience of ours.
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_iss": False,
    "verify_aud": False,
}

Note = Callable[..., None]
PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey


class KeysUnavailable(TemporarilyUnavailable):
    """The tenant's own key set cannot be had: whether the JWT is ours cannot be told,
    so the request changes nothing and may be retried (503)."""


class NotVerified(Exception):
    """The token is no JWT of this tenant; ``str()`` is the reason, for the log."""


def configured(tenant: TenantView) -> bool:
    settings = tenant.settings
    return settings.jwt_jwks is not None or settings.jwt_jwks_uri is not None


def media_type(typ: str) -> str:
    """RFC 7515 section 4.1.9: compared case-insensitively, ``application/`` implied."""
    typ = typ.lower()
    return typ.removeprefix("application/") if typ.count("/") == 1 else typ


def deny_key(token: str, jti: str | None) -> str:
    if jti is not None:
        return JTI_PREFIX + jti
    return SHA256_PREFIX + hashlib.sha256(token.encode()).hexdigest()


async def find(
    services: Services, tenant: TenantView, token: str, now: int, note: Note
) -> JwtCredential | None:
    """The JWT as a credential with its revocation state, or None when it is not one of
    this tenant's live JWTs. ``KeysUnavailable`` when the tenant's key set is."""
    if not configured(tenant) or not JWS_COMPACT.fullmatch(token):
        return None
    try:
        found = await verify(services, tenant, token, now)
    except NotVerified as reason:
        note(jwt=f"unknown: {reason}")
        return None
    except KeysUnavailable as exc:
        note(jwt=f"keys unavailable: {exc.description}")
        raise
    note(jwt=found.type.value)
    return await with_state(services.store, found, now)


async def verify(services: Services, tenant: TenantView, token: str, now: int) -> JwtCredential:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise NotVerified("malformed") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise NotVerified("algorithm not allowed")
    if "crit" in header:
        raise NotVerified("crit")
    kind = token_type(header.get("typ"), tenant.settings.jwt_device_secret_typ)
    kid = header.get("kid")
    source = KeySource(jwks=tenant.settings.jwt_jwks, jwks_uri=tenant.settings.jwt_jwks_uri)
    try:
        keys = await services.key_sets.keys(source, services.host_rules(tenant), kid)
    except KeySetUnavailable as exc:
        raise KeysUnavailable(f"the tenant's JWT key set: {exc}") from None
    claims = None
    for candidate in keys:
        key = fitting_key(candidate, alg)
        if key is None:
            continue
        try:
            claims = jwt.decode(token, key=key, algorithms=[alg], options=DECODE_OPTIONS)
            break
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise NotVerified(type(exc).__name__) from None
    if claims is None:
        raise NotVerified("no key of the tenant verifies it")
    return credential_of(tenant, token, kind, claims, now)


def token_type(typ: Any, device_secret_typ: str | None) -> TokenType:
    if typ is None:
        return TokenType.ACCESS_TOKEN
    if not isinstance(typ, str):
        raise NotVerified("typ")
    if device_secret_typ is not None and media_type(typ) == media_type(device_secret_typ):
        return TokenType.DEVICE_SECRET
    if media_type(typ) in ACCESS_TOKEN_TYPS:
        return TokenType.ACCESS_TOKEN
    raise NotVerified(f"typ {typ[:40]!r}")


def fitting_key(candidate: jwt.PyJWK, alg: str) -> PublicKey | None:
    """The public key of ``candidate`` when its type fits ``alg``, else None.

    PyJWT binds a JWK to its ``alg``, or by default to RS256 for any RSA key: an RSA key
    without ``alg`` may serve every RSA algorithm, otherwise the JWK's ``alg`` decides.
    """
    declared = candidate.algorithm_name
    if declared != alg and not (declared == "RS256" and alg in RSA_ALGORITHMS):
        return None
    key: Any = candidate.key
    if isinstance(
        key, RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey | Ed448PrivateKey
    ):
        key = key.public_key()
    if alg in RSA_ALGORITHMS:
        return key if isinstance(key, RSAPublicKey) else None
    if alg in EC_CURVES:
        fits = isinstance(key, EllipticCurvePublicKey) and key.curve.name == EC_CURVES[alg]
        return key if fits else None
    return key if isinstance(key, Ed25519PublicKey | Ed448PublicKey) else None


def credential_of(
    tenant: TenantView, token: str, kind: TokenType, claims: Mapping[str, Any], now: int
) -> JwtCredential:
    """The verified claims as a credential, once the issuer and the times check out."""
    iss = claims.get("iss")
    try:
        issuer = normalize_issuer(iss) if isinstance(iss, str) else None
    except ValueError:
        issuer = None
    if issuer != tenant.issuers[0]:
        raise NotVerified("iss is not the tenant's issuer")
    exp = _time(claims, "exp", math.ceil)
    if exp is None:
        raise NotVerified("exp")
    if exp <= now:
        raise NotVerified("expired")
    iat = _time(claims, "iat", math.floor)
    if outlives(tenant.settings.max_token_lifetime_s, iat, exp, now):
        raise NotVerified("lifetime over retention.max_token_lifetime_s")
    client_id = _text(claims, "client_id") or _text(claims, "azp")
    if client_id is None:
        raise NotVerified("no client_id")
    settings = tenant.settings
    jti = _text(claims, "jti")
    return JwtCredential(
        tenant_id=tenant.tenant_id,
        token_hash=b"",
        type=kind,
        client_id=client_id,
        exp=exp,
        sub=_text(claims, "sub"),
        grant_id=_text(claims, settings.jwt_grant_claim),
        device_session_id=_text(claims, settings.jwt_session_claim),
        scope=_scope(claims.get("scope")),
        iat=iat,
        deny_key=deny_key(token, jti),
        jti=jti,
        nbf=_time(claims, "nbf", math.floor),
    )


def outlives(max_lifetime_s: int, iat: int | None, exp: int, now: int) -> bool:
    """Whether a JWT lives longer than any token of the tenant may
    (``retention.max_token_lifetime_s``; 0: no bound): ``exp`` - ``iat`` above it, or,
    without ``iat``, ``exp`` further ahead than it.

    Housekeeping drops a not-before mark or an ended session once that lifetime and a
    margin have passed since it was set (``app.retention``). A JWT the mark covered was
    issued at or before it, so one still live now would have outlived the bound: it is
    refused here, and the dropped mark cannot make it valid again. A JWT without ``iat``
    is held to what can be checked; its issuer breaks RFC 9068 already.
    """
    if max_lifetime_s == 0:
        return False
    if iat is None:
        return exp - now > max_lifetime_s
    return exp - iat > max_lifetime_s


async def with_state(store: Store, c: JwtCredential, now: int) -> JwtCredential:
    """``c`` revoked as of now when its deny entry exists or a not-before mark covers it
    (``cascade.covering_marks``, read in one call).

    A mark covers a JWT issued at or before it. One without ``iat`` cannot be placed in
    time, so any mark for it covers it: a revocation is never undone by a missing claim
    (RFC 9068 requires ``iat`` anyway). A device secret's ended session is not a
    revocation of it: it makes it inactive at introspection, as for a registered one,
    but revoking it still takes down its session's refresh tokens.
    """
    if await store.is_denied(c.tenant_id, c.deny_key):
        # When it was denied is not kept; revoked by now is what is known.
        return replace(c, revoked_at=now, revoked_cause="denied")
    mark = await store.not_before(c.tenant_id, covering_marks(c))
    if mark is not None and (c.iat is None or c.iat <= mark):
        return replace(c, revoked_at=mark, revoked_cause="not_before")
    return c


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _time(claims: Mapping[str, Any], name: str, to_int: Callable[[float], int]) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < MAX_TIME:
        # As the admin API bounds registered times: what the stores can hold.
        raise NotVerified(f"{name} is not a NumericDate")
    return to_int(value)


def _scope(value: Any) -> str | None:
    """RFC 9068's space-separated ``scope``; a list of strings (``scp``-style) is joined."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return " ".join(value)
    return None
