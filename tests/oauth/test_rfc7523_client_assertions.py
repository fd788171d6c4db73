"""JWT client authentication (RFC 7523, OpenID Connect Core 9): ``private_key_jwt`` and
``client_secret_jwt`` at the revocation and introspection endpoints.

Every refused assertion is a ``401 invalid_client`` whose logged cause is checked, and
changes nothing: the token it came to revoke stays active.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from structlog.testing import capture_logs

from app.errors import StoreUnavailable
from app.oauth.rfc7523 import ASSERTION_TYPE
from app.services import Services
from tests.support.issuer_keys import IssuerKey, ec_key, ed_key, hs256_with, rsa_key, unsigned
from tests.support.world import OPERATOR, SECRET, World, basic, make_world

HS_SECRET = "client-secret-jwt-" + "s" * 40
"""Long enough for HS256 (RFC 7518 section 3.2: at least the hash's size)."""

Logs = list[dict[str, Any]]


@pytest.fixture
def logs() -> Iterator[Logs]:
    with capture_logs() as captured:
        yield captured


def causes(logs: Logs) -> list[str]:
    """The logged causes of the failed client authentications so far."""
    return [str(e["cause"]) for e in logs if e["event"] == "client_auth_failed"]


@dataclasses.dataclass
class Party:
    """A client of the test tenant that authenticates with assertions: signed by
    ``key`` (``private_key_jwt``) or keyed with ``secret`` (``client_secret_jwt``)."""

    world: World
    client_id: str
    key: IssuerKey | None = None
    secret: str | None = None

    @property
    def issuer(self) -> str:
        return self.world.tenant.issuer

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Good claims for the revocation endpoint; a ``None`` change leaves one out."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": f"{self.issuer}/token/revoke",
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(12),
            **changes,
        }
        return {k: v for k, v in claims.items() if v is not None}

    def assertion(self, **changes: Any) -> str:
        if self.secret is not None:
            return jwt.encode(self.claims(**changes), self.secret.encode(), algorithm="HS256")
        assert self.key is not None
        return self.key.sign(self.claims(**changes), typ="JWT")

    async def revoke(self, token: str, assertion: str, **form: str) -> httpx.Response:
        return await self.world.tenant.revoke(
            token, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion, **form
        )

    async def introspect(self, token: str, assertion: str) -> httpx.Response:
        tenant = self.world.tenant
        form = {"token": token, "client_assertion_type": ASSERTION_TYPE}
        form["client_assertion"] = assertion
        return await tenant.http.post("/token/introspect", data=form, headers=tenant.headers)


async def private_key_client(world: World, client_id: str, key: IssuerKey, **fields: Any) -> Party:
    if "jwks_uri" not in fields:
        fields.setdefault("jwks", key.jwks())
    await world.tenant.client(client_id, secret=None, method="private_key_jwt", **fields)
    await world.tenant.register({"token": "t", "type": "access_token", "client_id": client_id})
    return Party(world, client_id, key)


def refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["client_auth_id"]
    assert "www-authenticate" not in response.headers


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    return await make_world(http)


@pytest.fixture
async def rp(world: World) -> Party:
    """An ES256 private_key_jwt client with an inline key set, holding the token ``t``."""
    return await private_key_client(world, "rp", ec_key("rp-1"))


# --- accepted assertions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [ec_key("k"), rsa_key("k", "RS256"), rsa_key("k", "PS256"), ed_key("k")],
    ids=["ES256", "RS256", "PS256", "EdDSA"],
)
async def test_private_key_jwt_at_introspection_and_revocation(
    world: World, key: IssuerKey
) -> None:
    party = await private_key_client(world, "signer", key, scope="introspect")
    to_introspection = f"{world.tenant.issuer}/token/introspect"

    r = await party.introspect("t", party.assertion(aud=to_introspection))
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    r = await party.revoke("t", party.assertion())
    assert r.status_code == 200, r.text
    r = await party.introspect("t", party.assertion(aud=world.tenant.issuer))
    assert r.json() == {"active": False}
    assert not await world.active("t")


async def test_client_secret_jwt_at_introspection_and_revocation(world: World) -> None:
    party = Party(world, "hs", secret=HS_SECRET)
    await world.tenant.client(
        "hs", secret=HS_SECRET, method="client_secret_jwt", scope="introspect"
    )
    await world.tenant.register({"token": "t", "type": "refresh_token", "client_id": "hs"})

    r = await party.introspect("t", party.assertion(aud=f"{world.tenant.issuer}/token/introspect"))
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    assert (await party.revoke("t", party.assertion())).status_code == 200
    assert not await world.active("t")


@pytest.mark.parametrize(
    "aud",
    [
        "{issuer}",
        "{issuer}/",
        "{issuer}/token/revoke",
        "{issuer}/token/revoke/",
        ["https://elsewhere.example", "{issuer}/token/revoke"],
    ],
)
async def test_accepted_audiences(rp: Party, aud: str | list[str]) -> None:
    if isinstance(aud, list):
        aud = [a.format(issuer=rp.issuer) for a in aud]
    else:
        aud = aud.format(issuer=rp.issuer)
    r = await rp.revoke("t", rp.assertion(aud=aud))
    assert r.status_code == 200, r.text
    assert not await rp.world.active("t")


async def test_an_https_client_id_in_admin_paths_and_at_the_endpoints(world: World) -> None:
    client_id = "https://rp.spid.example.it/app/"
    party = await private_key_client(world, client_id, ec_key("spid-rp"), scope="introspect")
    path = f"/admin/v1/tenants/acme/clients/{quote(client_id, safe='')}"
    got = await world.tenant.http.get(path, headers=OPERATOR)
    assert got.status_code == 200
    assert got.json()["client_id"] == client_id

    aud = f"{world.tenant.issuer}/token/introspect"
    assert (await party.introspect("t", party.assertion(aud=aud))).json()["active"] is True
    r = await party.revoke("t", party.assertion(), client_id=client_id)
    assert r.status_code == 200, r.text
    assert not await world.active("t")


# --- refused assertions ----------------------------------------------------------------

Make = Callable[[Party, int], str]


def _other_key(party: Party, now: int) -> str:
    return ec_key("rp-1").sign(party.claims(), typ="JWT")


def _es512(party: Party, now: int) -> str:
    key = IssuerKey(ec.generate_private_key(ec.SECP521R1()), "ES512", "rp-1")
    return key.sign(party.claims(), typ="JWT")


def _hs256_with_public_pem(party: Party, now: int) -> str:
    assert party.key is not None
    return hs256_with(party.key.public_pem(), party.claims(), "rp-1")


def _hs256_with_public_jwk(party: Party, now: int) -> str:
    assert party.key is not None
    return hs256_with(json.dumps(party.key.jwk()).encode(), party.claims(), "rp-1")


REFUSED: dict[str, tuple[Make, str]] = {
    "wrong aud": (
        lambda p, now: p.assertion(aud="https://elsewhere.example/token/revoke"),
        "Audience doesn't match",
    ),
    "aud of the other endpoint": (
        lambda p, now: p.assertion(aud=f"{p.issuer}/token/introspect"),
        "Audience doesn't match",
    ),
    "aud of another tenant": (
        lambda p, now: p.assertion(aud=f"{p.issuer}-other"),
        "Audience doesn't match",
    ),
    "no aud": (lambda p, now: p.assertion(aud=None), 'missing the "aud" claim'),
    "expired": (lambda p, now: p.assertion(iat=now - 200, exp=now - 61), "has expired"),
    "exp over the maximum lifetime": (
        lambda p, now: p.assertion(iat=None, exp=now + 361),
        "more than 300 s ahead",
    ),
    "exp over the maximum lifetime after iat": (
        lambda p, now: p.assertion(iat=now - 250, exp=now + 60),
        "more than 300 s after its iat",
    ),
    "no exp": (lambda p, now: p.assertion(exp=None), 'missing the "exp" claim'),
    "exp not a number": (lambda p, now: p.assertion(exp=str(now + 60)), "exp is not a number"),
    "iat in the future beyond the skew": (
        lambda p, now: p.assertion(iat=now + 120, exp=now + 200),
        "not yet valid (iat)",
    ),
    "nbf in the future beyond the skew": (
        lambda p, now: p.assertion(nbf=now + 120, exp=now + 200),
        "not yet valid (nbf)",
    ),
    "no jti": (lambda p, now: p.assertion(jti=None), 'missing the "jti" claim'),
    "empty jti": (lambda p, now: p.assertion(jti=""), "jti is empty"),
    "iss is not sub": (lambda p, now: p.assertion(iss="other"), "Invalid issuer"),
    "wrong key": (_other_key, "signature does not verify"),
    "unknown kid": (
        lambda p, now: ec_key("rotated").sign(p.claims(), typ="JWT"),
        "no ES256 key with kid rotated",
    ),
    "alg none": (lambda p, now: unsigned(p.claims()), "'none' is not in auth.assertion_algs"),
    "alg not allowed by the tenant": (_es512, "'ES512' is not in auth.assertion_algs"),
    "HS256 keyed with the public key PEM": (
        _hs256_with_public_pem,
        "HS256 does not belong to private_key_jwt",
    ),
    "HS256 keyed with the public JWK": (
        _hs256_with_public_jwk,
        "HS256 does not belong to private_key_jwt",
    ),
    "not a JWT": (lambda p, now: "not.a-jwt", "not a JWT"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_assertions_change_nothing(rp: Party, logs: Logs, case: str) -> None:
    make, cause = REFUSED[case]
    refused(await rp.revoke("t", make(rp, int(time.time()))))
    assert cause in causes(logs)[-1]
    assert await rp.world.active("t")


async def test_the_tenants_algorithm_list_is_held_to(rp: Party, logs: Logs) -> None:
    await rp.world.tenant.patch({"auth": {"assertion_algs": ["RS256", "EdDSA"]}})
    refused(await rp.revoke("t", rp.assertion()))
    assert "'ES256' is not in auth.assertion_algs" in causes(logs)[-1]
    assert await rp.world.active("t")


async def test_a_jwk_with_its_own_alg_verifies_that_alg_only(world: World, logs: Logs) -> None:
    key = rsa_key("rsa", "PS256")
    party = await private_key_client(world, "rsa", key, jwks={"keys": [key.jwk(alg="RS256")]})
    refused(await party.revoke("t", party.assertion()))
    assert "no PS256 key with kid rsa" in causes(logs)[-1]
    assert await world.active("t")


async def test_a_replayed_jti_is_refused(world: World, logs: Logs) -> None:
    party = await private_key_client(world, "rp", ec_key("rp-1"), scope="introspect")
    once = party.assertion(aud=world.tenant.issuer)
    assert (await party.introspect("t", once)).json()["active"] is True
    refused(await party.introspect("t", once))
    assert "replay" in causes(logs)[-1]
    refused(await party.revoke("t", once))
    assert "replay" in causes(logs)[-1]
    assert await world.active("t")
    # A new jti is a new assertion.
    assert (await party.revoke("t", party.assertion())).status_code == 200


async def test_a_refused_assertion_does_not_use_up_its_jti(rp: Party, logs: Logs) -> None:
    """The tenant's ``auth.methods`` excludes private_key_jwt: refused, and nothing is
    recorded; once allowed again, the very same assertion works."""
    tenant = rp.world.tenant
    await tenant.patch({"auth": {"methods": ["client_secret_basic", "client_secret_post"]}})
    assertion = rp.assertion()
    refused(await rp.revoke("t", assertion))
    assert "private_key_jwt is switched off for this tenant" in causes(logs)[-1]
    assert await rp.world.active("t")
    await tenant.patch({"auth": {"methods": None}})
    assert (await rp.revoke("t", assertion)).status_code == 200
    assert not await rp.world.active("t")


async def test_an_assertion_from_a_client_registered_for_a_secret(world: World, logs: Logs) -> None:
    await world.tenant.register({"token": "t", "type": "access_token", "client_id": "app"})
    party = Party(world, "app", ec_key("app"))
    r = await party.revoke("t", party.assertion())
    refused(r)
    expected = "registered for client_secret_basic, not client_secret_jwt or private_key_jwt"
    assert expected in causes(logs)[-1]
    assert await world.active("t")


async def test_client_secret_jwt_takes_no_asymmetric_key_and_no_short_secret(
    world: World, logs: Logs
) -> None:
    key = ec_key("hs")
    party = Party(world, "hs", key)
    await world.tenant.client("hs", secret=HS_SECRET, method="client_secret_jwt")
    await world.tenant.register({"token": "t", "type": "access_token", "client_id": "hs"})
    refused(await party.revoke("t", party.assertion()))
    assert "ES256 does not belong to client_secret_jwt" in causes(logs)[-1]

    short = "sixteen-chars-xx"
    await world.tenant.client("hs", secret=short, method="client_secret_jwt")
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        weak = jwt.encode(party.claims(), short.encode(), algorithm="HS256")
    refused(await party.revoke("t", weak))
    assert "key does not fit" in causes(logs)[-1]
    assert await world.active("t")


async def test_client_id_beside_the_assertion(rp: Party) -> None:
    r = await rp.revoke("t", rp.assertion(), client_id="other")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert await rp.world.active("t")
    r = await rp.revoke("t", rp.assertion(), client_id="rp")
    assert r.status_code == 200
    assert not await rp.world.active("t")


@pytest.mark.parametrize(
    ("form", "auth"),
    [
        ({"client_assertion": "{assertion}"}, None),
        ({"client_assertion_type": ASSERTION_TYPE}, None),
        (
            {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                "client_assertion": "{assertion}",
            },
            None,
        ),
        (
            {
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": "{assertion}",
                "client_secret": SECRET,
            },
            None,
        ),
        ({"client_assertion_type": ASSERTION_TYPE, "client_assertion": "{assertion}"}, "basic"),
    ],
    ids=["no type", "no assertion", "another type", "with client_secret", "with Basic"],
)
async def test_malformed_assertion_requests_are_invalid_request(
    rp: Party, form: dict[str, str], auth: str | None
) -> None:
    """RFC 6749 section 5.2: a missing parameter, an unsupported parameter value, more
    than one mechanism."""
    assertion = rp.assertion()
    data = {k: v.format(assertion=assertion) for k, v in form.items()}
    headers = basic("rp", SECRET) if auth else None
    r = await rp.world.tenant.revoke("t", auth=headers, **data)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert await rp.world.active("t")


async def test_the_store_down_is_503_and_changes_nothing(
    rp: Party, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: object) -> bool:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(services.store, "use_assertion_id", down)
    r = await rp.revoke("t", rp.assertion())
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable"}
    monkeypatch.undo()
    assert await rp.world.active("t")


# --- keys from a jwks_uri ------------------------------------------------------------------


@dataclasses.dataclass
class KeySetServer:
    """A client's ``jwks_uri`` on 127.0.0.1, serving ``document``."""

    document: dict[str, Any]
    url: str = ""
    hits: int = 0


@pytest.fixture
def jwks_server() -> Iterator[KeySetServer]:
    served = KeySetServer({"keys": []})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits += 1
            body = json.dumps(served.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/jwk-set+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def private_fetches(services: Services) -> None:
    """The operator's ``--fetch-allow-private``: the test's key server is on 127.0.0.1."""
    services.config = dataclasses.replace(services.config, fetch_allow_private=True)


@pytest.mark.usefixtures("private_fetches")
async def test_jwks_uri_with_a_key_rotation(
    world: World, services: Services, jwks_server: KeySetServer, logs: Logs
) -> None:
    clock = [1_000.0]
    services.key_sets.monotonic = lambda: clock[0]
    old, new = ec_key("2025"), ec_key("2026")
    jwks_server.document = old.jwks()
    party = await private_key_client(world, "rp", old, jwks_uri=jwks_server.url)

    r = await party.revoke("nothing", party.assertion())
    assert r.status_code == 200, r.text
    assert jwks_server.hits == 1

    # The client rotates its key: an unknown kid refetches the set, though not more
    # often than the cache's minimum refresh interval.
    jwks_server.document = new.jwks()
    party.key = new
    rotated = party.assertion()
    refused(await party.revoke("t", rotated))
    assert "no ES256 key with kid 2026" in causes(logs)[-1]
    assert await world.active("t")
    clock[0] += services.key_sets.min_refresh_s + 1
    r = await party.revoke("t", rotated)
    assert r.status_code == 200, r.text
    assert jwks_server.hits == 2
    assert not await world.active("t")


async def test_jwks_uri_on_loopback_needs_the_operators_permission(
    world: World, jwks_server: KeySetServer, logs: Logs
) -> None:
    key = ec_key("rp")
    jwks_server.document = key.jwks()
    party = await private_key_client(world, "rp", key, jwks_uri=jwks_server.url)
    refused(await party.revoke("t", party.assertion()))
    assert "non-public address" in causes(logs)[-1]
    assert jwks_server.hits == 0
    assert await world.active("t")


@pytest.mark.usefixtures("private_fetches")
async def test_jwks_uri_outside_the_tenants_hosts(
    world: World, jwks_server: KeySetServer, logs: Logs
) -> None:
    await world.tenant.patch({"key_fetch": {"allowed_hosts": ["*.rp.example"]}})
    key = ec_key("rp")
    jwks_server.document = key.jwks()
    party = await private_key_client(world, "rp", key, jwks_uri=jwks_server.url)
    refused(await party.revoke("t", party.assertion()))
    assert "not in key_fetch.allowed_hosts" in causes(logs)[-1]
    assert jwks_server.hits == 0
    assert await world.active("t")
