#!/usr/bin/env python3
"""A key for ``private_key_jwt``, and RFC 7523 client assertions signed with it.

    python scripts/client_assertion.py keygen --alg ES256 --out key.json > jwks.json
    python scripts/client_assertion.py assert --key key.json \\
        --client-id https://rp.example.it/ --audience http://127.0.0.1:8000/t/spid

``keygen`` writes the private JWK (mode 0600, never overwritten) and prints the public
JWK set to register with the client. ``assert`` prints a fresh assertion: ``iss`` =
``sub`` = the client id, ``aud``, ``iat``, ``exp`` (``--lifetime`` seconds later), a
random ``jti``, and the key's ``kid`` and ``alg`` in the header.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALGS = ("ES256", "RS256")
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def thumbprint(public: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK: a ``kid`` that names the key itself."""
    members = {m: public[m] for m in THUMBPRINT_MEMBERS[public["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def keygen(alg: str, out: Path) -> dict[str, Any]:
    """Write a new private JWK to ``out``; return the public JWK set."""
    private: dict[str, Any]
    public: dict[str, Any]
    if alg == "ES256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        private = ECAlgorithm.to_jwk(ec_key, as_dict=True)
        public = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    else:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = RSAAlgorithm.to_jwk(rsa_key, as_dict=True)
        public = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    labels = {"kid": thumbprint(public), "use": "sig", "alg": alg}
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({**private, **labels}, file, indent=2)
        file.write("\n")
    return {"keys": [{**public, **labels}]}


def assertion(key_file: Path, client_id: str, audience: str, lifetime: int) -> str:
    """A client assertion signed with the private JWK in ``key_file``."""
    jwk = json.loads(key_file.read_text(encoding="utf-8"))
    key = jwt.PyJWK(jwk)
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(24),
    }
    headers = {"kid": jwk["kid"]} if "kid" in jwk else None
    return jwt.encode(claims, key.key, algorithm=key.algorithm_name, headers=headers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keys and client assertions for private_key_jwt.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("keygen", help="write a private JWK, print the public JWK set")
    make.add_argument("--alg", choices=ALGS, default="ES256")
    make.add_argument("--out", type=Path, required=True, help="the private JWK file (0600)")
    sign = commands.add_parser("assert", help="print a client assertion")
    sign.add_argument("--key", type=Path, required=True, help="the private JWK file")
    sign.add_argument("--client-id", required=True)
    sign.add_argument("--audience", required=True, help="the issuer or the endpoint URL")
    sign.add_argument("--lifetime", type=int, default=60, help="seconds until exp [60]")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        try:
            jwks = keygen(args.alg, args.out)
        except FileExistsError:
            parser.error(f"{args.out} exists; a key file is never overwritten")
        print(json.dumps(jwks, indent=2))
    else:
        if args.lifetime < 1:
            parser.error("--lifetime must be at least 1 second")
        print(assertion(args.key, args.client_id, args.audience, args.lifetime))
    return 0


if __name__ == "__main__":
    sys.exit(main())
