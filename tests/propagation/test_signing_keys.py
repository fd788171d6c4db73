"""The tenant's own signing keys through HTTP: ``{issuer}/jwks``, discovery, signatures
that verify with the published keys (PyJWT), rotation with overlap, the admin API and
the CLI, housekeeping, a master key rotation; per tenant, never a private member."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.admin import key_rotation
from app.cli import main
from app.directory import Directory, TenantView
from app.housekeeping import drop_retired_signing_keys
from app.models import Event
from app.propagation.rfc8417 import SET_TYP, security_event_claims
from app.propagation.signing_keys import DEFAULT_OVERLAP_S, sign
from app.services import Services
from tests.admin.conftest import bearer, tenant_key
from tests.support.world import OPERATOR, make_tenant

ACME = "https://auth.example.com/t/acme"
GLOBEX = "https://auth.example.com/t/globex"
PUBLIC_MEMBERS = {"kty", "crv", "x", "y", "kid", "alg", "use"}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def keys_url(tenant_id: str, rest: str = "") -> str:
    return f"/admin/v1/tenants/{tenant_id}/signing-keys{rest}"


@pytest.fixture
async def tenants(http: httpx.AsyncClient) -> None:
    await make_tenant(http, "acme", ACME)
    await make_tenant(http, "globex", GLOBEX)


async def view(services: Services, tenant_id: str) -> TenantView:
    await services.directory.refresh()
    found = services.directory.tenant(tenant_id)
    assert found is not None
    return found


async def jwks(http: httpx.AsyncClient, issuer: str) -> list[dict[str, Any]]:
    r = await http.get(f"{issuer}/jwks")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/jwk-set+json"
    assert "max-age=60" in r.headers["cache-control"]
    body = r.json()
    assert set(body) == {"keys"}
    for key in body["keys"]:
        assert set(key) <= PUBLIC_MEMBERS
        assert not set(key) & PRIVATE_MEMBERS
    keys: list[dict[str, Any]] = body["keys"]
    return keys


def verify(token: str, keys: list[dict[str, Any]], audience: str) -> dict[str, Any]:
    """The claims, verified with the published key the token's header names."""
    header = jwt.get_unverified_header(token)
    (key,) = [k for k in keys if k["kid"] == header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=audience
    )
    return claims


def thumbprint(key: dict[str, Any]) -> str:
    """RFC 7638, written out again here."""
    members = json.dumps({m: key[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def sign_for(services: Services, tenant_id: str, aud: str = "rs") -> str:
    claims = {"iss": "x", "aud": aud, "iat": services.clock(), "n": 1}
    return await sign(services, await view(services, tenant_id), claims, "example+jwt")


# --- /jwks and discovery -------------------------------------------------------------------


@pytest.mark.usefixtures("tenants")
async def test_the_key_set_is_empty_until_the_first_signature(
    http: httpx.AsyncClient, services: Services
) -> None:
    assert await jwks(http, ACME) == []
    # An anonymous read makes no key.
    assert await jwks(http, ACME) == []
    listed = await http.get(keys_url("acme"), headers=OPERATOR)
    assert listed.status_code == 200
    assert listed.json() == {"keys": []}
    # The same through a tenant header on any host.
    r = await http.get("http://other.test/jwks", headers={"Tenant-ID": "acme"})
    assert r.status_code == 200 and r.json() == {"keys": []}


@pytest.mark.usefixtures("tenants")
async def test_discovery_names_the_key_set(http: httpx.AsyncClient) -> None:
    body = (await http.get(f"{ACME}/.well-known/openid-configuration")).json()
    assert body["jwks_uri"] == f"{ACME}/jwks"


async def test_an_unknown_or_disabled_tenant_has_no_key_set(http: httpx.AsyncClient) -> None:
    assert (await http.get(f"{ACME}/jwks")).status_code == 404
    await make_tenant(http, "acme", ACME, enabled=False)
    assert (await http.get(f"{ACME}/jwks")).status_code == 404


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.usefixtures("tenants")
async def test_a_signature_verifies_with_the_published_key(
    http: httpx.AsyncClient, services: Services
) -> None:
    token = await sign_for(services, "acme")

    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"]) == ("ES256", "example+jwt")
    (key,) = await jwks(http, ACME)
    assert header["kid"] == key["kid"] == thumbprint(key)
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert verify(token, [key], "rs")["n"] == 1


@pytest.mark.usefixtures("tenants")
async def test_a_security_event_token_verifies_with_the_published_key(
    http: httpx.AsyncClient, services: Services
) -> None:
    tenant = await view(services, "acme")
    event = Event(id=7, time=1_700_000_000, type="revoked", cause="grant", sub="alice")
    claims = security_event_claims(tenant, event, "https://rs.example", "r1", services.clock())

    token = await sign(services, tenant, claims, SET_TYP)

    assert jwt.get_unverified_header(token)["typ"] == "secevent+jwt"
    verified = verify(token, await jwks(http, ACME), "https://rs.example")
    assert verified["iss"] == ACME
    assert verified["sub_id"] == {"format": "iss_sub", "iss": ACME, "sub": "alice"}


@pytest.mark.usefixtures("tenants")
async def test_signing_again_uses_the_same_key_without_reading_the_store(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await view(services, "acme")
    first = jwt.get_unverified_header(await sign(services, tenant, {}, "example+jwt"))["kid"]
    await sign(services, tenant, {}, "example+jwt")  # reads the list the first key went into

    reads: list[str] = []
    listing = services.store.list_signing_keys

    async def counted(tenant_id: str) -> Any:
        reads.append(tenant_id)
        return await listing(tenant_id)

    monkeypatch.setattr(services.store, "list_signing_keys", counted)
    for _ in range(3):
        token = await sign(services, tenant, {"n": 2}, "example+jwt")
        assert jwt.get_unverified_header(token)["kid"] == first
    assert reads == []


@pytest.mark.usefixtures("tenants")
async def test_racing_first_signatures_share_one_key(
    http: httpx.AsyncClient, services: Services
) -> None:
    tokens = await asyncio.gather(*(sign_for(services, "acme") for _ in range(5)))

    kids = {jwt.get_unverified_header(t)["kid"] for t in tokens}
    keys = await jwks(http, ACME)
    assert len(kids) == 1 and [k["kid"] for k in keys] == list(kids)
    for token in tokens:
        verify(token, keys, "rs")


# --- rotation --------------------------------------------------------------------------------


@pytest.mark.usefixtures("tenants")
async def test_rotation_keeps_the_old_key_published_and_both_verify(
    http: httpx.AsyncClient, services: Services
) -> None:
    before = await sign_for(services, "acme")
    old_kid = jwt.get_unverified_header(before)["kid"]

    r = await http.post(keys_url("acme", "/rotate"), headers=OPERATOR)

    assert r.status_code == 200, r.text
    listed = r.json()["keys"]
    assert [(k["current"], k["kid"] == old_kid) for k in listed] == [(True, False), (False, True)]
    new_kid = listed[0]["kid"]
    assert listed[0]["retire_at"] is None
    assert listed[1]["retire_at"] - services.clock() in range(
        DEFAULT_OVERLAP_S - 60, DEFAULT_OVERLAP_S + 1
    )
    after = await sign_for(services, "acme")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    keys = await jwks(http, ACME)
    assert [k["kid"] for k in keys] == [new_kid, old_kid]
    assert verify(before, keys, "rs")["n"] == 1
    assert verify(after, keys, "rs")["n"] == 1
    assert (await http.get(keys_url("acme"), headers=OPERATOR)).json()["keys"] == listed


@pytest.mark.usefixtures("tenants")
async def test_a_rotated_out_key_leaves_the_key_set_at_the_end_of_its_overlap(
    http: httpx.AsyncClient, services: Services
) -> None:
    await sign_for(services, "acme")
    r = await http.post(keys_url("acme", "/rotate"), json={"overlap_s": 600}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    new, old = r.json()["keys"]
    now = services.clock()
    assert old["retire_at"] - now in range(590, 601)

    services.clock = lambda: old["retire_at"] - 1
    assert [k["kid"] for k in await jwks(http, ACME)] == [new["kid"], old["kid"]]
    services.clock = lambda: old["retire_at"]
    assert [k["kid"] for k in await jwks(http, ACME)] == [new["kid"]]

    # Housekeeping drops it a day later, and not before.
    services.clock = lambda: old["retire_at"] + 86_400
    assert await drop_retired_signing_keys(services) == 0
    services.clock = lambda: old["retire_at"] + 86_401
    assert await drop_retired_signing_keys(services) == 1
    listed = (await http.get(keys_url("acme"), headers=OPERATOR)).json()["keys"]
    assert [k["kid"] for k in listed] == [new["kid"]]


@pytest.mark.usefixtures("tenants")
async def test_a_rotation_before_any_signature_makes_the_first_key(
    http: httpx.AsyncClient, services: Services
) -> None:
    r = await http.post(keys_url("acme", "/rotate"), json={}, headers=OPERATOR)
    assert r.status_code == 200, r.text
    (key,) = r.json()["keys"]
    assert key["current"] is True
    token = await sign_for(services, "acme")
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]


@pytest.mark.usefixtures("tenants")
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"overlap_s": -1}, "overlap_s"),
        ({"overlap_s": "600"}, "overlap_s"),
        ({"overlap_s": True}, "overlap_s"),
        ({"overlap_s": 366 * 86_400}, "overlap_s"),
        ({"overlap": 600}, "overlap"),
        ([600], ""),
    ],
)
async def test_a_bad_rotation_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, services: Services, body: Any, field: str
) -> None:
    await sign_for(services, "acme")
    before = (await http.get(keys_url("acme"), headers=OPERATOR)).json()

    r = await http.post(keys_url("acme", "/rotate"), json=body, headers=OPERATOR)

    assert r.status_code == 400, r.text
    assert (r.json()["error"], r.json()["field"]) == ("invalid_request", field)
    assert (await http.get(keys_url("acme"), headers=OPERATOR)).json() == before


async def test_rotating_an_unknown_tenant_is_404(http: httpx.AsyncClient) -> None:
    assert (await http.post(keys_url("nobody", "/rotate"), headers=OPERATOR)).status_code == 404
    assert (await http.get(keys_url("nobody"), headers=OPERATOR)).status_code == 404


# --- isolation, no private material ----------------------------------------------------------


@pytest.mark.usefixtures("tenants")
async def test_tenants_never_see_each_others_keys(
    http: httpx.AsyncClient, services: Services
) -> None:
    acme_token = await sign_for(services, "acme")
    globex_token = await sign_for(services, "globex")
    acme_keys, globex_keys = await jwks(http, ACME), await jwks(http, GLOBEX)

    assert {k["kid"] for k in acme_keys}.isdisjoint(k["kid"] for k in globex_keys)
    verify(acme_token, acme_keys, "rs")
    with pytest.raises(ValueError):  # no key of acme's set names globex's kid
        verify(globex_token, acme_keys, "rs")
    # The Tenant-ID header picks the tenant, whatever the host.
    r = await http.get("http://other.test/jwks", headers={"Tenant-ID": "globex"})
    assert [k["kid"] for k in r.json()["keys"]] == [k["kid"] for k in globex_keys]


@pytest.mark.usefixtures("tenants")
async def test_a_tenant_admin_manages_its_own_keys_only(
    http: httpx.AsyncClient, services: Services
) -> None:
    await sign_for(services, "globex")
    globex_before = (await http.get(keys_url("globex"), headers=OPERATOR)).json()
    acme_admin = bearer(await tenant_key(http, OPERATOR, "acme"))

    assert (await http.post(keys_url("acme", "/rotate"), headers=acme_admin)).status_code == 200
    assert (await http.get(keys_url("acme"), headers=acme_admin)).status_code == 200
    assert (await http.post(keys_url("globex", "/rotate"), headers=acme_admin)).status_code == 403
    assert (await http.get(keys_url("globex"), headers=acme_admin)).status_code == 403
    assert (await http.get(keys_url("globex"), headers=OPERATOR)).json() == globex_before
    assert (await http.get(keys_url("acme"))).status_code == 401


@pytest.mark.usefixtures("tenants")
async def test_no_private_member_is_ever_shown(http: httpx.AsyncClient, services: Services) -> None:
    await sign_for(services, "acme")
    rotated = await http.post(keys_url("acme", "/rotate"), headers=OPERATOR)
    stored = await services.store.list_signing_keys("acme")

    listed = (await http.get(keys_url("acme"), headers=OPERATOR)).json()["keys"]
    for shown in (rotated.json()["keys"], listed):
        assert [set(k) for k in shown] == [
            {"kid", "alg", "public_jwk", "created_at", "retire_at", "current"}
        ] * 2
        for k in shown:
            assert set(k["public_jwk"]) <= PUBLIC_MEMBERS
    texts = [rotated.text, json.dumps(listed), json.dumps(await jwks(http, ACME))]
    for key in stored:
        sealed = key.sealed_private
        for text in texts:
            assert base64.b64encode(sealed).decode() not in text
            assert sealed.hex() not in text
            assert "PRIVATE KEY" not in text


# --- master key rotation, CLI ------------------------------------------------------------------


@pytest.mark.usefixtures("tenants")
async def test_a_master_key_rotation_seals_the_signing_keys_again(
    http: httpx.AsyncClient, services: Services
) -> None:
    before = await sign_for(services, "acme")
    now = int(time.time())
    assert (await key_rotation.census(services, now))[1].signing_keys == 1

    rotation = await key_rotation.rotate(services, stage=False, now=now)

    assert rotation["resealed"] == 1
    holds = await key_rotation.census(services, now)
    assert (holds[1].signing_keys, holds[2].signing_keys) == (0, 1)
    # A process that starts now opens the key under the new master key.
    fresh = dataclasses.replace(services, directory=Directory(services.store))
    after = await sign_for(fresh, "acme")
    keys = await jwks(http, ACME)
    assert jwt.get_unverified_header(after)["kid"] == jwt.get_unverified_header(before)["kid"]
    verify(after, keys, "rs")


def test_the_signing_key_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    settings = json.dumps({"issuer": "https://acme.example"})
    assert main(["tenant", "put", "acme", "--from-json", settings, *data]) == 0
    capsys.readouterr()

    assert main(["signing-key", "list", "--tenant", "acme", *data]) == 0
    assert json.loads(capsys.readouterr().out) == {"keys": []}
    assert main(["signing-key", "rotate", "--tenant", "acme", *data]) == 0
    (first,) = json.loads(capsys.readouterr().out)["keys"]
    assert first["current"] is True and set(first["public_jwk"]) <= PUBLIC_MEMBERS
    rotate = ["signing-key", "rotate", "--tenant", "acme", "--overlap-s", "60", *data]
    assert main(rotate) == 0
    new, old = json.loads(capsys.readouterr().out)["keys"]
    assert (new["current"], old["current"], old["kid"]) == (True, False, first["kid"])
    assert old["retire_at"] >= old["created_at"] + 60
    assert main(["signing-key", "list", "--tenant", "acme", *data]) == 0
    assert [k["kid"] for k in json.loads(capsys.readouterr().out)["keys"]] == [
        new["kid"],
        old["kid"],
    ]
    assert main(["signing-key", "list", "--tenant", "nobody", *data]) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "not_found"
