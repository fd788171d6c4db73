"""A tenant signing key as a JSON Web Key (RFC 7517, RFC 7518 section 6.2) and its key
id, the RFC 7638 thumbprint. Pure: no store, no master key."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALG = "ES256"
"""ECDSA on P-256 with SHA-256: short signatures, and every JOSE library verifies it."""
CURVE = "P-256"
COORDINATE_BYTES = 32

PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "kid", "alg", "use")
"""What a published key may hold: never ``d`` or any other private member."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members of an EC key, in lexicographic order,
    without whitespace; base64url."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The public key with ``kid`` (its thumbprint), ``alg`` and ``use``."""
    numbers = key.public_numbers()
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": CURVE,
        "x": b64url(numbers.x.to_bytes(COORDINATE_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(COORDINATE_BYTES, "big")),
    }
    return {**jwk, "kid": thumbprint(jwk), "alg": ALG, "use": "sig"}


def published(jwk: dict[str, Any]) -> dict[str, Any]:
    """The JWK with its public members only, whatever was stored."""
    return {name: jwk[name] for name in PUBLIC_MEMBERS if name in jwk}


def generate() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_pem(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("a tenant signing key is not an EC key")
    return key
