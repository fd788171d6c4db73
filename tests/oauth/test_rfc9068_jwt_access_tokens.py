"""JWT access tokens (RFC 9068), never registered, really revoked (CONTRACT.md 4.1, 4.2).

The tenant's authorization server signs them (``tests.support.issuer_keys``); the
service verifies them with the tenant's ``jwt_access_tokens`` keys, denies a revoked one
until its ``exp``, and sets the not-before marks its cascade policy calls for.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from app.config import ServiceConfig
from app.housekeeping import purge_once
from app.oauth.rfc9068 import deny_key
from app.services import Services
from tests.plugins.probes import _probe
from tests.support.issuer_keys import (
    IssuerKey,
    access_claims,
    b64,
    ec_key,
    ed_key,
    hs256_with,
    rsa_key,
    unsigned,
)
from tests.support.world import SECRET, World, basic, make_world

PROBES = Path(__file__).parents[1] / "plugins" / "probes"
RSA = rsa_key()
EC = ec_key()


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    """Key sets may be fetched from this machine (the test's JWKS server); the probe
    plugins are there for the one test that enables them."""
    return ServiceConfig(
        data_dir=tmp_path / "data",
        tenants_dir=None,
        fetch_allow_private=True,
        plugins_dir=PROBES,
    )


async def jwt_world(
    http: httpx.AsyncClient, *keys: IssuerKey, tenant_id: str = "acme", **settings: Any
) -> World:
    """A tenant whose authorization server signs with ``keys`` (set as an operator would,
    by ``PATCH``), with a client ``admin`` that has the scope ``revoke_any_token``."""
    keys = keys or (RSA, EC)
    jwt_settings = {"jwks": {"keys": [k.jwk() for k in keys]}, **settings.pop("jwt", {})}
    world = await make_world(http, tenant_id, **settings)
    await world.tenant.patch({"jwt_access_tokens": jwt_settings})
    await world.tenant.client("admin", secret=SECRET, scope="revoke_any_token")
    return world


def token(world: World, key: IssuerKey = RSA, **claims: Any) -> str:
    return key.sign(access_claims(world.tenant.issuer, **claims))


async def revoked_events(world: World) -> list[dict[str, Any]]:
    return [e for e in await world.tenant.events() if e["type"] == "revoked"]


# --- revoke, then introspect -------------------------------------------------------------


@pytest.mark.parametrize(
    "key", [RSA, EC, rsa_key("ps-1", "PS256"), ed_key()], ids=["RS256", "ES256", "PS256", "EdDSA"]
)
async def test_a_revoked_jwt_is_inactive(http: httpx.AsyncClient, key: IssuerKey) -> None:
    world = await jwt_world(http, key)
    at = token(world, key, grant_id="g1", jti="jti-1")
    body = await world.tenant.introspect(at, world.rs)
    claims = access_claims(world.tenant.issuer)
    assert body == {
        "active": True,
        "token_type": "Bearer",
        "client_id": "app",
        "sub": "alice",
        "scope": "read write",
        "exp": body["exp"],
        "iat": body["iat"],
        "iss": world.tenant.issuer,
        "jti": "jti-1",
        "grant_id": "g1",
    }
    assert abs(body["exp"] - claims["exp"]) <= 5
    r = await world.tenant.revoke(at, auth=world.app)
    assert (r.status_code, r.content) == (200, b"")
    assert await world.tenant.introspect(at, world.rs) == {"active": False}
    [event] = await revoked_events(world)
    assert event["jti"] == "jti-1"
    assert event["token_type"] == "access_token"
    assert (event["client_id"], event["sub"], event["cause"]) == ("app", "alice", "grant")
    assert at not in json.dumps(event)


async def test_typ_absent_or_jwt_is_an_access_token_too(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http)
    for typ in (None, "JWT", "application/at+jwt", "AT+JWT"):
        at = RSA.sign(access_claims(world.tenant.issuer), typ=typ)
        assert await world.active(at), typ


async def test_azp_stands_in_for_a_missing_client_id(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http)
    at = token(world, client_id=None, azp="app")
    assert (await world.tenant.introspect(at, world.rs))["client_id"] == "app"
    assert (await world.tenant.revoke(at, auth=world.other)).status_code == 400
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert not await world.active(at)
    anonymous = token(world, client_id=None)
    assert not await world.active(anonymous)


async def test_a_jwt_without_jti_is_denied_by_its_hash(
    http: httpx.AsyncClient, services: Services
) -> None:
    world = await jwt_world(http)
    at = token(world, jti=None)
    twin = token(world, jti=None, scope="other")
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert not await world.active(at)
    assert await world.active(twin)
    assert await services.store.is_denied("acme", deny_key(at, None))
    assert deny_key(at, None).startswith("sha256:")
    assert at not in deny_key(at, None)
    [event] = await revoked_events(world)
    assert "jti" not in event


# --- who may revoke ----------------------------------------------------------------------


async def test_another_clients_jwt(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"allow_revoke_other_clients": True})
    at = token(world)
    # A public client learns nothing and revokes nothing.
    r = await world.tenant.revoke(at, client_id=world.spa_id)
    assert (r.status_code, r.content) == (200, b"")
    assert await world.active(at)
    # A confidential one is told.
    r = await world.tenant.revoke(at, auth=world.other)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert await world.active(at)
    assert await revoked_events(world) == []
    # One with revoke_any_token, where the tenant allows it, revokes it.
    r = await world.tenant.revoke(at, auth=basic("admin", SECRET))
    assert r.status_code == 200
    assert not await world.active(at)


async def test_revoke_any_token_needs_the_tenant_setting(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http)
    at = token(world)
    assert (await world.tenant.revoke(at, auth=basic("admin", SECRET))).status_code == 400
    assert await world.active(at)


# --- what is not ours is unknown ------------------------------------------------------


def forgeries(world: World) -> dict[str, str]:
    issuer = world.tenant.issuer
    now = int(time.time())
    stranger = rsa_key("rsa-1", n=1)  # another key under the tenant key's kid
    return {
        "bad signature": stranger.sign(access_claims(issuer)),
        "unknown kid": rsa_key("nobody", n=1).sign(access_claims(issuer)),
        "tampered": _tampered(RSA.sign(access_claims(issuer))),
        "wrong issuer": RSA.sign(access_claims("https://evil.example.com")),
        "another issuer path": RSA.sign(access_claims(issuer + "/x")),
        "expired": RSA.sign(access_claims(issuer, iat=now - 7200, exp=now - 3600)),
        "no exp": RSA.sign(access_claims(issuer, exp=None)),
        "no iss": RSA.sign(access_claims(issuer, iss=None)),
        "alg none": unsigned(access_claims(issuer)),
        "HS256 with the public key": hs256_with(RSA.public_pem(), access_claims(issuer), "rsa-1"),
        "ES256 header on an RSA key": _relabelled(EC, "rsa-1", access_claims(issuer)),
        "id token typ": RSA.sign(access_claims(issuer), typ="id_token+jwt"),
        "security event typ": RSA.sign(access_claims(issuer), typ="secevent+jwt"),
        "logout typ": RSA.sign(access_claims(issuer), typ="logout+jwt"),
        "crit": RSA.sign(access_claims(issuer), crit=["exp"]),
        "string exp": RSA.sign(access_claims(issuer, exp="tomorrow")),
        "not a jwt": "a.b.c",
        "alg a list": _with_header({"alg": ["RS256"], "kid": "rsa-1"}, access_claims(issuer)),
        "typ a number": _with_header({"alg": "RS256", "typ": 1}, access_claims(issuer)),
    }


def _tampered(at: str) -> str:
    header, payload, signature = at.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "mallory"
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def _with_header(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.c2ln"


def _relabelled(key: IssuerKey, kid: str, claims: dict[str, Any]) -> str:
    return IssuerKey(key.private, key.alg, kid).sign(claims)


async def test_what_does_not_check_out_is_unknown(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"cascade": "subject"})
    real = token(world)
    for case, forged in forgeries(world).items():
        assert not await world.active(forged), case
        r = await world.tenant.revoke(forged, auth=world.app)
        assert (r.status_code, r.content) == (200, b""), case
        assert await world.active(real), case
    assert await world.tenant.events() == []


async def test_a_tenant_without_jwt_keys_knows_no_jwt(http: httpx.AsyncClient) -> None:
    world = await make_world(http)
    at = RSA.sign(access_claims(world.tenant.issuer))
    assert not await world.active(at)
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert await world.tenant.events() == []


async def test_tenant_isolation(http: httpx.AsyncClient) -> None:
    acme = await jwt_world(http, RSA)
    # globex trusts acme's key too, but is another issuer.
    globex = await jwt_world(http, EC, RSA, tenant_id="globex")
    at_acme = token(acme)
    assert not await globex.active(at_acme)
    r = await globex.tenant.revoke(at_acme, auth=globex.app)
    assert (r.status_code, r.content) == (200, b"")
    assert await globex.tenant.events() == []
    assert await acme.tenant.events() == []
    assert await acme.active(at_acme)
    # And the other way round, with a key acme does not have.
    at_globex = token(globex, EC)
    assert not await acme.active(at_globex)
    assert (await acme.tenant.revoke(at_globex, auth=acme.app)).status_code == 200
    assert await globex.active(at_globex)


# --- cascades: not-before marks ---------------------------------------------------------


async def test_subject_policy_takes_the_pairs_earlier_jwts(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"cascade": "subject"})
    now = int(time.time())
    await world.tenant.register(
        {"token": "opaque-alice", "type": "refresh_token", "client_id": "app", "sub": "alice"},
        {"token": "opaque-bob", "type": "access_token", "client_id": "app", "sub": "bob"},
    )
    revoked = token(world)
    earlier = token(world, iat=now - 600)
    later = token(world, iat=now + 600)
    bob = token(world, sub="bob", iat=now - 600)
    others = token(world, client_id="other", iat=now - 600)
    assert (await world.tenant.revoke(revoked, auth=world.app)).status_code == 200
    assert not await world.active(revoked)
    assert not await world.active(earlier)
    assert not await world.active("opaque-alice")  # the policy's registered tokens too
    assert await world.active(later)
    assert await world.active(bob)
    assert await world.active("opaque-bob")
    assert await world.active(others)


async def test_grant_policy_with_the_grant_claim(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, jwt={"grant_claim": "gid"})
    now = int(time.time())
    await world.tenant.register(
        {"token": "g1-rt", "type": "refresh_token", "client_id": "app", "grant_id": "g1"},
        {"token": "g2-rt", "type": "refresh_token", "client_id": "app", "grant_id": "g2"},
    )
    revoked = token(world, gid="g1")
    earlier = token(world, gid="g1", iat=now - 600)
    later = token(world, gid="g1", iat=now + 600)
    other_grant = token(world, gid="g2", iat=now - 600)
    no_claim = token(world, iat=now - 600)
    assert (await world.tenant.introspect(revoked, world.rs))["grant_id"] == "g1"
    assert (await world.tenant.revoke(revoked, auth=world.app)).status_code == 200
    assert not await world.active(revoked)
    assert not await world.active(earlier)
    assert not await world.active("g1-rt")
    assert await world.active(later)
    assert await world.active(other_grant)
    assert await world.active(no_claim)
    assert await world.active("g2-rt")


async def test_grant_policy_without_the_grant_claim_takes_the_token_only(
    http: httpx.AsyncClient,
) -> None:
    world = await jwt_world(http)
    now = int(time.time())
    revoked = token(world)
    earlier = token(world, iat=now - 600)
    assert (await world.tenant.revoke(revoked, auth=world.app)).status_code == 200
    assert not await world.active(revoked)
    assert await world.active(earlier)


async def test_an_opaque_token_revoked_under_subject_takes_the_pairs_jwts(
    http: httpx.AsyncClient,
) -> None:
    world = await jwt_world(http, revocation={"cascade": "subject"})
    now = int(time.time())
    await world.tenant.register(
        {"token": "opaque", "type": "access_token", "client_id": "app", "sub": "alice"}
    )
    earlier = token(world, iat=now - 600)
    later = token(world, iat=now + 600)
    bob = token(world, sub="bob", iat=now - 600)
    assert (await world.tenant.revoke("opaque", auth=world.app)).status_code == 200
    assert not await world.active(earlier)
    assert await world.active(later)
    assert await world.active(bob)


async def test_a_jwt_without_iat_falls_to_any_mark_of_its_pair(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"cascade": "subject"})
    undated = token(world, iat=None)
    assert "iat" not in await world.tenant.introspect(undated, world.rs)
    assert (await world.tenant.revoke(token(world), auth=world.app)).status_code == 200
    assert not await world.active(undated)


async def test_revoke_all_takes_the_clients_earlier_jwts(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"allow_revoke_all": True})
    now = int(time.time())
    earlier = token(world, iat=now - 600, sub="bob")
    later = token(world, iat=now + 600)
    others = token(world, client_id="other", iat=now - 600)
    r = await world.tenant.revoke("anything", auth=world.app, token_type_hint="all")
    assert r.status_code == 200
    assert not await world.active(earlier)
    assert await world.active(later)
    assert await world.active(others)


@pytest.mark.parametrize("policy", ["spid", "cie", "token"])
async def test_narrow_policies_take_the_token_alone_among_jwts(
    http: httpx.AsyncClient, policy: str
) -> None:
    world = await jwt_world(http, revocation={"cascade": policy})
    now = int(time.time())
    await world.tenant.register(
        {"token": "g1-rt", "type": "refresh_token", "client_id": "app", "grant_id": "g1"}
    )
    revoked = token(world, grant_id="g1", sid="sso-1")
    sibling = token(world, grant_id="g1", iat=now - 600)
    assert (await world.tenant.revoke(revoked, auth=world.app)).status_code == 200
    assert not await world.active(revoked)
    assert await world.active(sibling)
    # SPID: the grant's refresh tokens, and the session ends.
    assert await world.active("g1-rt") is (policy != "spid")
    types = [e["type"] for e in await world.tenant.events()]
    assert types == (["revoked", "session_ended"] if policy == "spid" else ["revoked"])


# --- idempotence, expiry -------------------------------------------------------------


async def test_revoking_twice_gives_one_event(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http, revocation={"cascade": "subject"})
    at = token(world)
    for _ in range(3):
        assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert len(await world.tenant.events()) == 1


async def test_a_deny_entry_goes_after_exp_and_the_retention(
    http: httpx.AsyncClient, services: Services
) -> None:
    world = await jwt_world(http)
    now = int(time.time())
    at = token(world, jti="short", iat=now - 60, exp=now + 60)
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    key = deny_key(at, "short")
    assert key == "jti:short"
    assert await services.store.is_denied("acme", key)
    retention = services.config.credential_retention_s
    services.clock = lambda: now + 60 + retention - 10
    await purge_once(services)
    assert await services.store.is_denied("acme", key)
    services.clock = lambda: now + 60 + retention + 10
    assert await purge_once(services) >= 1
    assert not await services.store.is_denied("acme", key)
    # Long expired by now: unknown, and revoking it stores nothing again.
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert not await services.store.is_denied("acme", key)


async def test_expired_at_the_services_clock_is_inactive(
    http: httpx.AsyncClient, services: Services
) -> None:
    world = await jwt_world(http)
    now = int(time.time())
    at = token(world, exp=now + 60)
    assert await world.active(at)
    services.clock = lambda: now + 61
    assert not await world.active(at)
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert await world.tenant.events() == []


# --- plugins see the JWT as a credential ------------------------------------------------


async def test_pre_revoke_sees_the_jwts_metadata(http: httpx.AsyncClient) -> None:
    _probe.CALLS.clear()
    world = await jwt_world(
        http,
        plugins={"enabled": [{"name": "probe_a", "config": {"endpoints": ["revocation"]}}]},
    )
    at = token(world, grant_id="g1", sid="sso-1", jti="jti-7")
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    [call] = _probe.calls("pre_revoke")
    _probe.CALLS.clear()
    credential = call["context"]["credential"]
    assert credential == {
        "type": "access_token",
        "client_id": "app",
        "exp": credential["exp"],
        "sub": "alice",
        "grant_id": "g1",
        "device_session_id": "sso-1",
        "scope": "read write",
        "iat": credential["iat"],
        "revoked": False,
    }
    assert call["args"]["plan"]["selectors"][0] == {"by": "token"}
    assert at not in json.dumps(call)
    assert not await world.active(at)


async def test_a_plugin_narrowing_the_cascade_replans_the_jwt(http: httpx.AsyncClient) -> None:
    _probe.CALLS.clear()
    probe = {"endpoints": ["revocation"], "pre_revoke": {"cascade": "token"}}
    world = await jwt_world(
        http,
        revocation={"cascade": "subject"},
        plugins={"enabled": [{"name": "probe_a", "config": probe}]},
    )
    earlier = token(world, iat=int(time.time()) - 600)
    revoked = token(world)
    assert (await world.tenant.revoke(revoked, auth=world.app)).status_code == 200
    _probe.CALLS.clear()
    assert not await world.active(revoked)
    assert await world.active(earlier)  # no (client, subject) mark under "token"


async def test_a_jwt_before_its_nbf_is_inactive_but_revocable(http: httpx.AsyncClient) -> None:
    world = await jwt_world(http)
    at = token(world, nbf=int(time.time()) + 600)
    assert not await world.active(at)
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert len(await revoked_events(world)) == 1


# --- keys from a jwks_uri ---------------------------------------------------------------


class _Keys(BaseHTTPRequestHandler):
    document: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[str]:
    _Keys.document = RSA.jwks(EC)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_keys_from_the_tenants_jwks_uri(http: httpx.AsyncClient, jwks_server: str) -> None:
    world = await make_world(http, jwt_access_tokens={"jwks_uri": jwks_server})
    at = token(world, EC)
    assert await world.active(at)
    assert (await world.tenant.revoke(at, auth=world.app)).status_code == 200
    assert not await world.active(at)


async def test_an_unreachable_jwks_uri_is_503_and_changes_nothing(
    http: httpx.AsyncClient, services: Services
) -> None:
    uri = f"http://127.0.0.1:{closed_port()}/jwks.json"
    world = await make_world(
        http, revocation={"cascade": "subject"}, jwt_access_tokens={"jwks_uri": uri}
    )
    at = token(world, jti="jti-503")
    r = await world.tenant.revoke(at, auth=world.app)
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable"}
    assert int(r.headers["retry-after"]) > 0
    r = await http.post(
        "/token/introspect", data={"token": at}, headers={**world.tenant.headers, **world.rs}
    )
    assert r.status_code == 503
    assert await world.tenant.events() == []
    assert not await services.store.is_denied("acme", "jti:jti-503")
    # A registered token needs no keys, and an opaque unknown one is no JWT.
    await world.tenant.register({"token": "opaque", "type": "access_token", "client_id": "app"})
    assert await world.active("opaque")
    assert (await world.tenant.revoke("not-a-jwt", auth=world.app)).status_code == 200
