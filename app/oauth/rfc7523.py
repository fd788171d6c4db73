"""Client assertions: JWT client authentication (RFC 7523 sections 2.2 and 3, RFC 7521
section 4.2, OpenID Connect Core 1.0 section 9).

``client_secret_jwt`` assertions are HMACs keyed with the client's secret;
``private_key_jwt`` assertions are signed with a key of the client's ``jwks`` or
``jwks_uri``. PyJWT does the JOSE work; this module chooses the keys and the claims.

- The header is read before anything is trusted, only to choose: its ``alg`` must be in
  the tenant's ``auth.assertion_algs`` and belong to the client's method (HS* for
  ``client_secret_jwt``, the asymmetric ones for ``private_key_jwt``), so a public key
  never becomes an HMAC secret (algorithm confusion, RFC 8725 section 2.1). Each
  candidate key must fit the algorithm (RSA for RS/PS, EC on the algorithm's curve for
  ES, OKP for EdDSA) and is handed to PyJWT as a key object with that one algorithm.
- Claims (section 3): ``iss`` = ``sub`` = the client; ``aud`` names the tenant's issuer
  or the endpoint's URL (a trailing ``/`` ignored); ``exp`` required, not past, and at
  most ``auth.max_assertion_lifetime_s`` ahead (of now and of ``iat``); ``iat`` and
  ``nbf`` not in the future; ``jti`` required and used once (section 3, item 7), in the
  store, so that every instance sees it. ``auth.clock_skew_s`` applies throughout.

Errors (RFC 7521 section 4.2.1, RFC 7523 section 3.2): an assertion that fails a check
is ``invalid_client`` (401) with the exact cause in the log only. A request that lacks
``client_assertion`` or ``client_assertion_type``, or names a type other than
``ASSERTION_TYPE``, is malformed rather than unauthenticated: ``invalid_request`` (400),
as RFC 6749 section 5.2 says of a missing parameter or an unsupported parameter value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from app.auth_methods import AuthMethod, method_for_alg
from app.directory import TenantView
from app.errors import InvalidClient, InvalidRequest
from app.key_sets import KeySetUnavailable, KeySource
from app.models import Client
from app.services import Services

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_JTI = 255
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "jti")
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
"""``cryptography``'s curve names as JOSE names them."""

Claims = dict[str, Any]
Refuse = Callable[[str], InvalidClient]


def read_assertion(form: Mapping[str, str]) -> str:
    """The assertion of a request that carries one (RFC 7521 section 4.2)."""
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    if not assertion_type or not assertion:
        raise InvalidRequest("client_assertion and client_assertion_type go together")
    if assertion_type != ASSERTION_TYPE:
        raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
    return assertion


def claimed_client(assertion: str) -> str:
    """The client the assertion says it is (its ``sub``, else ``iss``), unverified: only
    to find the client whose keys then verify it."""
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidClient("the client assertion is not a JWT") from None
    for name in ("sub", "iss"):
        if isinstance(claims.get(name), str) and claims[name]:
            return str(claims[name])
    raise InvalidClient("the client assertion names no client (sub)")


def audiences(tenant: TenantView, endpoint_path: str) -> list[str]:
    """The ``aud`` values that address this tenant at this endpoint: each issuer (aliases
    included) and the endpoint's URL under it, with and without a trailing ``/``."""
    out: list[str] = []
    for issuer in (tenant.settings.issuer, *tenant.settings.issuer_aliases, *tenant.issuers):
        base = issuer.rstrip("/")
        for url in (base, base + endpoint_path):
            out += [url, url + "/"]
    return list(dict.fromkeys(out))


async def verify(
    services: Services,
    tenant: TenantView,
    client: Client,
    method: AuthMethod,
    assertion: str,
    audience: Sequence[str],
    now: int,
) -> Claims:
    """The verified claims of ``client``'s assertion, its ``jti`` now used; else
    ``InvalidClient`` naming the cause (``StoreUnavailable`` when the store is down)."""
    client_id = client.client_id

    def refuse(cause: str) -> InvalidClient:
        return InvalidClient(cause, client_id=client_id)

    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise refuse(f"the client assertion's header is unreadable: {exc}") from None
    alg = header.get("alg")
    settings = tenant.settings
    if not isinstance(alg, str) or alg.lower() == "none" or alg not in settings.assertion_algs:
        raise refuse(f"assertion alg {alg!r} is not in auth.assertion_algs")
    if method_for_alg(alg) is not method:
        raise refuse(f"assertion alg {alg} does not belong to {method}")
    keys = await _keys(services, tenant, client, method, alg, header.get("kid"), refuse)
    claims = _decode(assertion, alg, keys, client_id, audience, settings.clock_skew_s, refuse)
    exp = _numeric(claims, "exp", refuse)
    iat = _numeric(claims, "iat", refuse) if "iat" in claims else None
    lifetime, skew = settings.max_assertion_lifetime_s, settings.clock_skew_s
    if exp > now + lifetime + skew:
        raise refuse(f"the assertion's exp is more than {lifetime} s ahead")
    if iat is not None and exp - iat > lifetime:
        raise refuse(f"the assertion's exp is more than {lifetime} s after its iat")
    jti = claims["jti"]
    if not jti or len(jti) > MAX_JTI:
        raise refuse(f"the assertion's jti is empty or longer than {MAX_JTI} characters")
    # Kept until the assertion can no longer be accepted, skew included.
    if not await services.store.use_assertion_id(tenant.tenant_id, client_id, jti, exp + skew, now):
        raise refuse("the assertion's jti was used before (replay)")
    return claims


async def _keys(
    services: Services,
    tenant: TenantView,
    client: Client,
    method: AuthMethod,
    alg: str,
    kid: Any,
    refuse: Refuse,
) -> list[Any]:
    """The keys that may have signed an ``alg`` assertion of ``client``."""
    if method is AuthMethod.CLIENT_SECRET_JWT:
        if client.secret_encrypted is None:
            raise refuse("the client has no sealed secret for client_secret_jwt")
        try:
            secret = services.keys.open_secret(
                tenant.tenant_id, tenant.record.key_salt, client.secret_encrypted, client.client_id
            )
        except InvalidTag:
            raise refuse("the client's sealed secret does not open") from None
        return [secret.encode()]
    if kid is not None and not isinstance(kid, str):
        raise refuse("the assertion's kid is not a string")
    source = KeySource(jwks=client.jwks, jwks_uri=client.jwks_uri)
    try:
        found = await services.key_sets.keys(source, services.host_rules(tenant), kid)
    except KeySetUnavailable as exc:
        raise refuse(f"the client's key set is unavailable: {exc}") from None
    keys = [k.key for k in found if _fits(k, alg)]
    if not keys:
        raise refuse(f"the client's key set has no {alg} key" + (f" with kid {kid}" if kid else ""))
    return keys


def _fits(key: jwt.PyJWK, alg: str) -> bool:
    """Whether a JWK may verify ``alg``: its type and curve fit, and the ``alg`` it
    declares, if any, is this one (RFC 7517 section 4.4)."""
    # PyJWK fills in a default for a JWK without ``alg`` (RS256 for any RSA key), so
    # what the JWK itself declares is read from its data.
    declared = getattr(key, "_jwk_data", {}).get("alg")
    if declared is not None and declared != alg:
        return False
    public = key.key
    if alg.startswith(("RS", "PS")):
        return key.key_type == "RSA" and isinstance(public, rsa.RSAPublicKey)
    if alg in EC_CURVES:
        return (
            key.key_type == "EC"
            and isinstance(public, ec.EllipticCurvePublicKey)
            and CURVE_NAMES.get(public.curve.name) == EC_CURVES[alg]
        )
    if alg == "EdDSA":
        return key.key_type == "OKP" and isinstance(
            public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
        )
    return False  # HS*: never a key of the set (an "oct" JWK is no client secret)


def _decode(
    assertion: str,
    alg: str,
    keys: Iterable[Any],
    client_id: str,
    audience: Sequence[str],
    skew: int,
    refuse: Refuse,
) -> Claims:
    failure = "the client assertion's signature does not verify"
    for key in keys:
        try:
            claims: Claims = jwt.decode(
                assertion,
                key,
                algorithms=[alg],
                audience=list(audience),
                issuer=client_id,
                subject=client_id,
                leeway=skew,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidKeyError as exc:
            failure = f"the client's key does not fit: {exc}"
            continue
        except jwt.PyJWTError as exc:
            raise refuse(f"the client assertion is invalid: {exc}") from None
        return claims
    raise refuse(failure)


def _numeric(claims: Claims, name: str, refuse: Refuse) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(f"the assertion's {name} is not a number")
    return int(value)
