"""The Token Status List (IETF OAuth Token Status List draft): indexes handed out at
registration, and the signed, compressed list showing exactly the revoked ones."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.application import create_app
from app.bootstrap import open_services
from app.cli import main
from app.config import ServiceConfig
from app.propagation.status_indexes import LIST_SIZE
from app.services import Services
from app.store.sqlite.store import SqliteStore
from tests.support.world import OPERATOR, SECRET, Tenant, World, basic, make_world

ENABLED = {"status_list": {"enabled": True}}
EXP = 4_000_000_000
DEADLINE_S = 5.0
"""How long a list may take to show a revocation here: the stamp moves within a second
(MongoDB: when the change stream delivers the events); far above it, for slow machines."""


async def status_world(http: httpx.AsyncClient, tenant_id: str = "acme", **settings: Any) -> World:
    return await make_world(http, tenant_id, **{**ENABLED, **settings})


def credential(token: str, client_id: str = "app", **fields: Any) -> dict[str, Any]:
    return {"token": token, "type": "access_token", "client_id": client_id, **fields}


async def fetch(
    tenant: Tenant, number: int = 1, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await tenant.http.get(
        f"/status-lists/{number}", headers={**tenant.headers, **(headers or {})}
    )


async def published_key(tenant: Tenant, kid: str) -> Any:
    r = await tenant.http.get("/jwks", headers=tenant.headers)
    assert r.status_code == 200, r.text
    [jwk] = [k for k in r.json()["keys"] if k["kid"] == kid]
    return jwt.PyJWK(jwk).key


async def verified_claims(tenant: Tenant, token: str) -> dict[str, Any]:
    """The token's claims, its signature checked with the key published at /jwks."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "statuslist+jwt"
    assert header["alg"] == "ES256"
    key = await published_key(tenant, header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["ES256"], options={"require": ["sub", "iat", "exp"]}
    )
    return claims


def set_bits(lst: str) -> set[int]:
    """Indexes whose bit is 1: byte i // 8, bit i % 8 from the least significant."""
    data = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    assert len(data) * 8 == LIST_SIZE
    return {
        i * 8 + bit for i, byte in enumerate(data) if byte for bit in range(8) if byte >> bit & 1
    }


async def revoked_bits(tenant: Tenant, number: int = 1) -> set[int]:
    r = await fetch(tenant, number)
    assert r.status_code == 200, r.text
    claims = await verified_claims(tenant, r.text)
    assert claims["status_list"]["bits"] == 1
    return set_bits(claims["status_list"]["lst"])


async def eventually(read: Callable[[], Awaitable[set[int]]], expected: set[int]) -> None:
    """``read()`` gives ``expected`` before the deadline (at once on SQLite, once the
    change stream delivered on MongoDB)."""
    deadline = time.monotonic() + DEADLINE_S
    while (found := await read()) != expected:
        assert time.monotonic() < deadline, f"{found} != {expected}"
        await asyncio.sleep(0.02)


def indexes(answer: dict[str, Any]) -> list[int]:
    return [entry["status_list"]["idx"] for entry in answer["status"]]


async def test_each_credential_gets_an_index_at_registration(http: httpx.AsyncClient) -> None:
    world = await status_world(http)
    t = world.tenant
    answer = await t.register(credential("a"), credential("b"), credential("a"), credential("c"))
    assert (answer["registered"], answer["duplicates"]) == (3, 1)
    uri = f"{t.issuer}/status-lists/1"
    assert [entry["status_list"]["uri"] for entry in answer["status"]] == [uri] * 4
    a, b, a_again, c = indexes(answer)
    assert a == a_again
    assert len({a, b, c}) == 3

    # Registered again: the index it was stored with; a new one gets a new index.
    again = await t.register(credential("c"), credential("d"), credential("a"))
    assert (again["registered"], again["duplicates"]) == (1, 2)
    c2, d, a2 = indexes(again)
    assert (c2, a2) == (c, a)
    assert d not in {a, b, c}


async def test_the_list_shows_exactly_the_revoked_credentials(http: httpx.AsyncClient) -> None:
    world = await status_world(http, revocation={"allow_revoke_all": True})
    t = world.tenant
    answer = await t.register(
        credential("g1-at", grant_id="g1"),
        credential("g1-rt", type="refresh_token", grant_id="g1"),
        credential("g2-at", grant_id="g2"),
        credential("alone"),
        *(credential(f"other-{i}", client_id="other") for i in range(3)),
    )
    names = ["g1-at", "g1-rt", "g2-at", "alone", "o0", "o1", "o2"]
    idx = dict(zip(names, indexes(answer), strict=True))
    assert await revoked_bits(t) == set()

    assert (await t.revoke("alone", auth=world.app)).status_code == 200
    expected = {idx["alone"]}
    await eventually(lambda: revoked_bits(t), expected)

    assert (await t.revoke("g1-at", auth=world.app)).status_code == 200  # grant cascade
    expected |= {idx["g1-at"], idx["g1-rt"]}
    await eventually(lambda: revoked_bits(t), expected)

    r = await t.revoke("whatever", auth=world.other, token_type_hint="all")  # a sweep
    assert r.status_code == 200
    expected |= {idx["o0"], idx["o1"], idx["o2"]}
    await eventually(lambda: revoked_bits(t), expected)
    assert idx["g2-at"] not in expected


async def test_the_token_is_signed_typed_and_cached_as_the_draft_says(
    http: httpx.AsyncClient,
) -> None:
    world = await status_world(http, status_list={"enabled": True, "ttl_s": 300})
    t = world.tenant
    await t.register(credential("a"))
    r = await fetch(t)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/statuslist+jwt"
    assert r.headers["content-encoding"] == "gzip"  # httpx asks for it, and decodes it
    assert r.headers["cache-control"] == "max-age=300"
    plain = await fetch(t, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.text == r.text
    assert plain.headers["etag"] != r.headers["etag"]
    claims = await verified_claims(t, r.text)
    assert claims["sub"] == f"{t.issuer}/status-lists/1"
    assert claims["iss"] == t.issuer
    assert claims["ttl"] == 300
    assert claims["exp"] > claims["iat"] + 300
    assert claims["status_list"]["aggregation_uri"] == f"{t.issuer}/status-lists"

    # Discovery names the aggregation, which names the list.
    r = await http.get("/.well-known/oauth-authorization-server", headers=t.headers)
    assert r.json()["status_list_aggregation_endpoint"] == f"{t.issuer}/status-lists"
    r = await http.get("/status-lists", headers=t.headers)
    assert r.status_code == 200
    assert r.json() == {"status_lists": [f"{t.issuer}/status-lists/1"]}

    # The draft's other forms: CWT (not served), historical resolution (not kept).
    r = await fetch(t, headers={"Accept": "application/statuslist+cwt"})
    assert r.status_code == 406
    r = await fetch(t, headers={"Accept": "application/statuslist+jwt"})
    assert r.status_code == 200
    r = await http.get("/status-lists/1?time=1700000000", headers=t.headers)
    assert r.status_code == 501


async def test_etag_and_if_none_match(http: httpx.AsyncClient) -> None:
    world = await status_world(http)
    t = world.tenant
    await t.register(credential("a"))
    first = await fetch(t)
    etag = first.headers["etag"]
    r = await fetch(t, headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag

    assert (await t.revoke("a", auth=world.app)).status_code == 200

    async def changed() -> set[int]:
        r = await fetch(t, headers={"If-None-Match": etag})
        return {r.status_code}

    await eventually(changed, {200})
    r = await fetch(t, headers={"If-None-Match": etag})
    assert r.headers["etag"] != etag
    assert len(await revoked_bits(t)) == 1


async def test_concurrent_requests_share_one_build(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await status_world(http)
    await world.tenant.register(credential("a"))
    reads = 0
    read = services.store.revoked_status_indexes

    async def counted(*args: Any) -> list[int]:
        nonlocal reads
        reads += 1
        return await read(*args)

    monkeypatch.setattr(services.store, "revoked_status_indexes", counted)
    answers = await asyncio.gather(*(fetch(world.tenant) for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    assert reads == 1


async def test_a_tenant_without_a_list(http: httpx.AsyncClient) -> None:
    world = await make_world(http)
    t = world.tenant
    answer = await t.register(credential("a"))
    assert answer == {"registered": 1, "duplicates": 0}
    assert (await fetch(t)).status_code == 404
    assert (await http.get("/status-lists", headers=t.headers)).status_code == 404
    r = await http.get("/.well-known/oauth-authorization-server", headers=t.headers)
    assert "status_list_aggregation_endpoint" not in r.json()

    # Switched on later: "a" has no index (null), new credentials do.
    await t.patch(ENABLED)
    answer = await t.register(credential("a"), credential("b"))
    assert answer["status"][0] is None
    assert answer["status"][1]["status_list"]["uri"] == f"{t.issuer}/status-lists/1"
    assert (await fetch(t)).status_code == 200
    assert (await fetch(t, 2)).status_code == 404
    assert (await fetch(t, 0)).status_code == 404


async def test_tenants_have_lists_of_their_own(http: httpx.AsyncClient) -> None:
    acme = await status_world(http, "acme")
    globex = await status_world(http, "globex")
    a = await acme.tenant.register(credential("shared-token"), credential("a2"))
    g = await globex.tenant.register(credential("shared-token"), credential("g2"))
    assert indexes(a) == indexes(g) == [0, 1]
    assert a["status"][0]["status_list"]["uri"] != g["status"][0]["status_list"]["uri"]

    assert (await acme.tenant.revoke("shared-token", auth=acme.app)).status_code == 200
    await eventually(lambda: revoked_bits(acme.tenant), {0})
    assert await revoked_bits(globex.tenant) == set()
    kids = set()
    for tenant in (acme.tenant, globex.tenant):
        token = (await fetch(tenant)).text
        kids.add(jwt.get_unverified_header(token)["kid"])
        # Each verifies with its own tenant's key only.
        other = globex.tenant if tenant is acme.tenant else acme.tenant
        r = await http.get("/jwks", headers=other.headers)
        assert all(k["kid"] != jwt.get_unverified_header(token)["kid"] for k in r.json()["keys"])
    assert len(kids) == 2


async def test_a_revocation_by_another_worker_shows_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two services on one SQLite file, as two workers: the second's cached list is
    rebuilt as soon as the first commits a revocation (the shared events stamp)."""
    monkeypatch.setenv("REVOCATION_ADMIN_KEY", OPERATOR["Authorization"].removeprefix("Bearer "))
    config = ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None)
    stores = [SqliteStore(tmp_path / "shared.sqlite3") for _ in range(2)]
    for store in stores:
        await store.open()
    services = [await open_services(config, store=store) for store in stores]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(services=s)), base_url="http://w"
        )
        for s in services
    ]
    try:
        one, two = clients
        world = await status_world(one)
        answer = await world.tenant.register(credential("a"), credential("b"))
        on_two = Tenant(two, world.tenant.tenant_id, world.tenant.issuer)
        assert await revoked_bits(on_two) == set()  # built and kept by the second worker
        r = await world.tenant.revoke("b", auth=basic("app", SECRET))
        assert r.status_code == 200
        assert await revoked_bits(on_two) == {indexes(answer)[1]}
    finally:
        for client in clients:
            await client.aclose()
        for s in services:
            await s.close()
        for store in stores:
            await store.close()


def test_the_cli_and_the_import_hand_out_indexes_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``credential register`` answers the indexes; ``credential import`` stores them."""

    def run(*argv: str) -> Any:
        code = main([*argv, "--data-dir", str(tmp_path / "data")])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    acme = {"issuer": "https://acme.example", **ENABLED}
    run("tenant", "put", "acme", "--from-json", json.dumps(acme))
    run("client", "put", "acme", "app", "--from-json", '{"type": "public"}')
    registered = run(
        "credential",
        "register",
        "acme",
        "--from-json",
        json.dumps([credential("a", exp=EXP), credential("b", exp=EXP)]),
    )
    first = indexes(registered)
    assert len(set(first)) == 2
    source = tmp_path / "more.jsonl"
    lines = [credential("c", exp=EXP), credential("d", exp=EXP), credential("a", exp=EXP)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = run("credential", "import", "acme", str(source))
    assert (report["registered"], report["duplicates"]) == (2, 1)
    # Registered again, the imported ones answer the indexes the import stored.
    again = run(
        "credential",
        "register",
        "acme",
        "--from-json",
        json.dumps([credential("c", exp=EXP), credential("d", exp=EXP), credential("a", exp=EXP)]),
    )
    assert again["duplicates"] == 3
    c, d, a = indexes(again)
    assert a == first[0]
    assert len({c, d, *first}) == 4
