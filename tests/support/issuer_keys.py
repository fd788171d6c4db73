"""An authorization server's signing keys, as the tests play it: JWT access tokens and JWT
device secrets signed with PyJWT, keys made with ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HOUR = 3600
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@cache
def _rsa(n: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class IssuerKey:
    private: PrivateKey
    alg: str
    kid: str

    def jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            out = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            out = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            out = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**out, "kid": self.kid, "use": "sig", **extra}

    def jwks(self, *others: IssuerKey) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in (self, *others)]}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, typ: str | None = "at+jwt", **header: Any) -> str:
        """``claims`` signed (a ``None`` claim left out); ``typ=None`` leaves it out too."""
        headers: dict[str, Any] = {"kid": self.kid, "typ": typ, **header}
        body = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


def rsa_key(kid: str = "rsa-1", alg: str = "RS256", n: int = 0) -> IssuerKey:
    """RSA keys are slow to make: key ``n`` is made once per test run."""
    return IssuerKey(_rsa(n), alg, kid)


def ec_key(kid: str = "ec-1") -> IssuerKey:
    return IssuerKey(ec.generate_private_key(ec.SECP256R1()), "ES256", kid)


def ed_key(kid: str = "ed-1") -> IssuerKey:
    return IssuerKey(ed25519.Ed25519PrivateKey.generate(), "EdDSA", kid)


def access_claims(issuer: str, **claims: Any) -> dict[str, Any]:
    """An RFC 9068 access token's claims for the client ``app`` and subject ``alice``,
    issued a minute ago for an hour; ``None`` leaves a claim out."""
    now = int(time.time())
    return {
        "iss": issuer,
        "client_id": "app",
        "sub": "alice",
        "aud": "https://api.example.com",
        "jti": secrets.token_hex(8),
        "iat": now - 60,
        "exp": now + HOUR,
        "scope": "read write",
        **claims,
    }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 JWT whose HMAC secret is ``secret`` (the algorithm-confusion attack uses
    the issuer's public key; PyJWT rightly refuses to sign that)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    payload = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def unsigned(claims: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."
