"""The per-process JWK-set cache, against a real HTTP server on the loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app import key_sets
from app.key_sets import KeySets, KeySetUnavailable, KeySource, parse
from app.outbound import Fetcher, HostRules
from tests.test_outbound import LocalServer, answer, answer_json

LOOPBACK_OK = HostRules(("127.0.0.1",), allow_private=True)
TTL_S = 300.0
MIN_REFRESH_S = 10.0
STALE_S = 3_600.0


def ec_jwk(kid: str, **members: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "ES256", **members}


def rsa_jwk(kid: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "alg": "RS256"}


def kids(keys: list[jwt.PyJWK]) -> list[str | None]:
    return [k.key_id for k in keys]


@dataclass
class Clock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class JwksServer:
    """``/jwks`` answers ``document``, or 500 while ``failing``."""

    local: LocalServer
    document: dict[str, Any] = field(default_factory=lambda: {"keys": [ec_jwk("k1")]})
    failing: bool = False

    def __post_init__(self) -> None:
        self.local.routes["/jwks"] = self._jwks
        self.url = self.local.url("/jwks")

    def _jwks(self, handler: BaseHTTPRequestHandler) -> None:
        if self.failing:
            answer(handler, 500, b"{}")
        else:
            answer_json(handler, self.document)

    def requests(self) -> int:
        return self.local.paths().count("/jwks")


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    local = LocalServer()
    try:
        yield JwksServer(local)
    finally:
        local.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cache(clock: Clock) -> AsyncIterator[KeySets]:
    fetcher = Fetcher()
    try:
        yield KeySets(
            fetcher,
            monotonic=clock,
            ttl_s=TTL_S,
            min_refresh_s=MIN_REFRESH_S,
            stale_s=STALE_S,
        )
    finally:
        await fetcher.close()


# Inline sets ---------------------------------------------------------------------------


async def test_an_inline_set_is_parsed_once_and_never_fetched(
    cache: KeySets, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[object] = []

    def counting(document: Any) -> tuple[jwt.PyJWK, ...]:
        parsed.append(document)
        return parse(document)

    monkeypatch.setattr(key_sets, "parse", counting)
    source = KeySource(jwks={"keys": [ec_jwk("a"), rsa_jwk("b")]})
    assert kids(await cache.keys(source, LOOPBACK_OK, "b")) == ["b"]
    assert kids(await cache.keys(source, LOOPBACK_OK, "a")) == ["a"]
    assert kids(await cache.keys(source, LOOPBACK_OK, None)) == ["a", "b"]
    assert await cache.keys(source, LOOPBACK_OK, "c") == []
    assert len(parsed) == 1
    assert cache.fetches == 0


async def test_no_source_at_all_is_unavailable(cache: KeySets) -> None:
    with pytest.raises(KeySetUnavailable, match="no jwks"):
        await cache.keys(KeySource(), LOOPBACK_OK, None)


# Which keys a set yields ---------------------------------------------------------------


def test_only_public_signature_keys_are_kept() -> None:
    private = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    document = {
        "keys": [
            ec_jwk("enc", use="enc"),
            ec_jwk("wrap", key_ops=["wrapKey"]),
            ec_jwk("none", alg="none"),
            ec_jwk("mismatch", alg="RS256"),
            {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "hmac", "alg": "HS256"},
            {**private, "kid": "private", "alg": "ES256"},
            {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x25519"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "broken"},
            "not an object",
            ec_jwk("sig", use="sig"),
            ec_jwk("verify", key_ops=["verify"]),
            ec_jwk("plain"),
        ]
    }
    assert kids(list(parse(document))) == ["sig", "verify", "plain"]


@pytest.mark.parametrize(
    "document",
    [
        {"keys": [ec_jwk("enc", use="enc")]},
        {"keys": []},
        {"keys": "nope"},
        ["not", "a", "set"],
        {"keys": [ec_jwk(f"k{i}") for i in range(key_sets.MAX_KEYS + 1)]},
    ],
    ids=["only-enc", "empty", "keys-not-a-list", "not-an-object", "too-many-keys"],
)
async def test_a_set_without_usable_keys_is_unavailable(cache: KeySets, document: Any) -> None:
    with pytest.raises(KeySetUnavailable):
        await cache.keys(KeySource(jwks=document), LOOPBACK_OK, None)


async def test_a_hundred_keys_are_accepted(cache: KeySets) -> None:
    one = ec_jwk("k")
    document = {"keys": [{**one, "kid": f"k{i}"} for i in range(key_sets.MAX_KEYS)]}
    assert len(await cache.keys(KeySource(jwks=document), LOOPBACK_OK, None)) == 100


async def test_a_fetched_set_of_enc_keys_is_unavailable(
    cache: KeySets, jwks_server: JwksServer
) -> None:
    jwks_server.document = {"keys": [ec_jwk("e1", use="enc")]}
    with pytest.raises(KeySetUnavailable, match="no usable signature key"):
        await cache.keys(KeySource(jwks_uri=jwks_server.url), LOOPBACK_OK, "e1")


async def test_a_fetched_set_of_too_many_keys_is_unavailable(
    cache: KeySets, jwks_server: JwksServer
) -> None:
    one = ec_jwk("k")
    jwks_server.document = {"keys": [{**one, "kid": f"k{i}"} for i in range(101)]}
    with pytest.raises(KeySetUnavailable, match="more than 100 keys"):
        await cache.keys(KeySource(jwks_uri=jwks_server.url), LOOPBACK_OK, "k1")


# Fetched sets --------------------------------------------------------------------------


async def test_a_cached_set_answers_without_fetching(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    clock.now += TTL_S - 1
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert kids(await cache.keys(source, LOOPBACK_OK, None)) == ["k1"]
    assert cache.fetches == 1
    assert jwks_server.requests() == 1


async def test_a_set_is_fetched_again_after_its_ttl(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    await cache.keys(source, LOOPBACK_OK, "k1")
    clock.now += TTL_S
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert cache.fetches == 2


async def test_an_unknown_kid_refetches_once_then_finds_the_rotated_key(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    await cache.keys(source, LOOPBACK_OK, "k1")
    jwks_server.document = {"keys": [*jwks_server.document["keys"], ec_jwk("k2")]}
    clock.now += MIN_REFRESH_S
    assert kids(await cache.keys(source, LOOPBACK_OK, "k2")) == ["k2"]
    assert cache.fetches == 2
    # Both keys are now cached.
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert kids(await cache.keys(source, LOOPBACK_OK, "k2")) == ["k2"]
    assert cache.fetches == 2


async def test_unknown_kids_within_min_refresh_fetch_nothing(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    await cache.keys(source, LOOPBACK_OK, "k1")
    clock.now += MIN_REFRESH_S
    assert await cache.keys(source, LOOPBACK_OK, "made-up-1") == []
    assert cache.fetches == 2
    clock.now += MIN_REFRESH_S - 1
    for n in range(2, 20):
        assert await cache.keys(source, LOOPBACK_OK, f"made-up-{n}") == []
    assert cache.fetches == 2
    assert jwks_server.requests() == 2
    clock.now += 1
    assert await cache.keys(source, LOOPBACK_OK, "made-up-20") == []
    assert cache.fetches == 3


async def test_a_stale_set_serves_while_the_server_fails_then_is_refused(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    start = clock.now
    await cache.keys(source, LOOPBACK_OK, "k1")
    jwks_server.failing = True
    clock.now = start + TTL_S
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert cache.fetches == 2
    clock.now = start + STALE_S - 1
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert cache.fetches == 3
    # Past stale_s the set is refused, whether a fetch is due (min_refresh_s after the
    # last try) or not.
    clock.now = start + STALE_S
    with pytest.raises(KeySetUnavailable, match="answered 500"):
        await cache.keys(source, LOOPBACK_OK, "k1")
    assert cache.fetches == 3
    clock.now = start + STALE_S - 1 + MIN_REFRESH_S
    with pytest.raises(KeySetUnavailable, match="answered 500"):
        await cache.keys(source, LOOPBACK_OK, "k1")
    assert cache.fetches == 4
    jwks_server.failing = False
    clock.now += MIN_REFRESH_S
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert cache.fetches == 5


async def test_a_failing_url_is_not_fetched_again_within_min_refresh(
    cache: KeySets, jwks_server: JwksServer, clock: Clock
) -> None:
    jwks_server.failing = True
    source = KeySource(jwks_uri=jwks_server.url)
    for _ in range(5):
        with pytest.raises(KeySetUnavailable, match="answered 500"):
            await cache.keys(source, LOOPBACK_OK, "k1")
    assert cache.fetches == 1
    assert jwks_server.requests() == 1
    clock.now += MIN_REFRESH_S
    jwks_server.failing = False
    assert kids(await cache.keys(source, LOOPBACK_OK, "k1")) == ["k1"]
    assert cache.fetches == 2


async def test_concurrent_misses_share_one_fetch(cache: KeySets, jwks_server: JwksServer) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    found = await asyncio.gather(*(cache.keys(source, LOOPBACK_OK, "k1") for _ in range(20)))
    assert [kids(k) for k in found] == [["k1"]] * 20
    assert cache.fetches == 1
    assert jwks_server.requests() == 1


async def test_concurrent_misses_on_a_failing_url_share_one_fetch(
    cache: KeySets, jwks_server: JwksServer
) -> None:
    jwks_server.failing = True
    source = KeySource(jwks_uri=jwks_server.url)
    results = await asyncio.gather(
        *(cache.keys(source, LOOPBACK_OK, "k1") for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, KeySetUnavailable) for r in results)
    assert cache.fetches == 1


async def test_a_host_outside_the_patterns_is_never_fetched(
    cache: KeySets, jwks_server: JwksServer
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    with pytest.raises(KeySetUnavailable, match="allowed_hosts"):
        await cache.keys(source, HostRules(("*.example",), allow_private=True), "k1")
    assert cache.fetches == 0
    assert jwks_server.requests() == 0


async def test_a_loopback_url_without_allow_private_is_unavailable(
    cache: KeySets, jwks_server: JwksServer
) -> None:
    source = KeySource(jwks_uri=jwks_server.url)
    with pytest.raises(KeySetUnavailable, match="non-public"):
        await cache.keys(source, HostRules(("*",)), "k1")
    assert jwks_server.requests() == 0


async def test_an_invalid_jwks_uri_is_unavailable(cache: KeySets) -> None:
    with pytest.raises(KeySetUnavailable):
        await cache.keys(KeySource(jwks_uri="http://[::1/jwks"), LOOPBACK_OK, None)
