"""Client authentication methods (RFC 6749 section 2.3, RFC 7523, OpenID Connect Core 9).

The one list of their names, and how they group: what the settings allow, what the
admin API registers, what client authentication runs and what discovery lists. Kept
free of ``app.oauth`` so that settings and the admin API can import it.
"""

from __future__ import annotations

from enum import StrEnum


class AuthMethod(StrEnum):
    """``token_endpoint_auth_method`` values (IANA OAuth registry), in discovery order."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    CLIENT_SECRET_JWT = "client_secret_jwt"
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


SECRET_METHODS: frozenset[AuthMethod] = frozenset(
    {AuthMethod.CLIENT_SECRET_BASIC, AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_JWT}
)
"""Methods whose clients have a ``client_secret``."""

SEALED_SECRET_METHODS: frozenset[AuthMethod] = frozenset({AuthMethod.CLIENT_SECRET_JWT})
"""Methods that need the secret itself (an HMAC key), kept sealed beside its hash."""

KEY_METHODS: frozenset[AuthMethod] = frozenset({AuthMethod.PRIVATE_KEY_JWT})
"""Methods whose clients register public keys (``jwks`` or ``jwks_uri``)."""

JWT_METHODS: frozenset[AuthMethod] = frozenset(
    {AuthMethod.CLIENT_SECRET_JWT, AuthMethod.PRIVATE_KEY_JWT}
)
"""Methods that present an RFC 7523 client assertion."""

HMAC_ALGS: frozenset[str] = frozenset({"HS256", "HS384", "HS512"})
"""Assertion algorithms keyed with the client secret: ``client_secret_jwt`` only. Every
other allowed algorithm is asymmetric: ``private_key_jwt`` only."""


def method_for_alg(alg: str) -> AuthMethod:
    """The JWT method an assertion algorithm belongs to."""
    return AuthMethod.CLIENT_SECRET_JWT if alg in HMAC_ALGS else AuthMethod.PRIVATE_KEY_JWT
