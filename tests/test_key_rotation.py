"""Master-key rotation (``app.keys``, ``app.admin.key_rotation``, docs/OPERATIONS.md).

What the store holds under the old key stays usable through HTTP after a rotation: tokens
are found and revoked, a revoked one stays revoked, basic secrets authenticate, sealed
``client_secret_jwt`` secrets are re-sealed, tenant admin keys work; the old key is
dropped only once nothing depends on it. The HTTP tests run on both stores.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from structlog.testing import capture_logs

from app.admin import key_rotation
from app.application import create_app
from app.bootstrap import open_services
from app.cli import main
from app.config import ServiceConfig
from app.errors import ConfigError, Conflict, NotFound
from app.keys import (
    KEY_RING_FILE,
    MASTER_KEY_ENV,
    MASTER_KEY_FILE,
    MASTER_KEYS_FILE_ENV,
    KeyRing,
    KeyState,
    MasterKey,
    load_keys,
    parse_ring,
    ring_json,
    write_ring,
)
from app.models import Tenant
from app.oauth.rfc7523 import ASSERTION_TYPE
from app.services import Services
from app.tenant_files import load_tenant_files
from tests.support.server import running_server
from tests.support.world import HOUR, OPERATOR, World, basic, make_world
from tests.support.world import Tenant as WorldTenant

HS_SECRET = "client-secret-jwt-" + "s" * 40
NEW_SECRET = "a-new-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_keys_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys come from the data directory unless a test sets them."""
    for name in (MASTER_KEY_ENV, MASTER_KEYS_FILE_ENV):
        monkeypatch.delenv(name, raising=False)


# --- the ring, without a store --------------------------------------------------------


def test_a_single_key_data_dir_is_version_1_and_hashes_as_before(tmp_path: Path) -> None:
    """Data directories from before key versions keep every hash they hold."""
    master = secrets.token_bytes(32)
    (tmp_path / MASTER_KEY_FILE).write_text(master.hex() + "\n")
    ring = KeyRing.load(tmp_path)
    assert [(k.id, k.state) for k in ring.keys] == [(1, KeyState.CURRENT)]

    salt = b"salt" * 4
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"revocation-service/v1/token-hash/acme",
    ).derive(master)
    assert ring.token_hash("acme", salt, "tok") == hmac.digest(key, b"tok", "sha256")
    assert ring.token_hashes("acme", salt, "tok") == (ring.token_hash("acme", salt, "tok"),)


def test_hashes_and_seals_name_their_key_version() -> None:
    v1, v2 = secrets.token_bytes(32), secrets.token_bytes(32)
    old = KeyRing(v1)
    ring = KeyRing(
        [MasterKey(2, v2, KeyState.CURRENT), MasterKey(1, v1, KeyState.RETIRED)],
    )
    salt = b"s" * 16
    new_hash = ring.token_hash("acme", salt, "tok")
    assert len(new_hash) == 34 and new_hash[:2] == b"\x00\x02"
    assert ring.token_hashes("acme", salt, "tok") == (new_hash, old.token_hash("acme", salt, "tok"))

    old_secret = old.secret_hash("acme", salt, "pw")
    assert ring.secret_hash("acme", salt, "pw", like=old_secret) == old_secret
    assert ring.admin_key_hash("k", like=old.admin_key_hash("k")) == old.admin_key_hash("k")

    sealed = ring.seal_secret("acme", salt, "shh", "rp")
    assert sealed.startswith(b"rk\x00\x02")
    assert ring.open_secret("acme", salt, sealed, "rp") == "shh"
    assert ring.seal_version("acme", salt, sealed, "rp") == 2
    legacy = old.seal_secret("acme", salt, "shh", "rp")
    assert ring.open_secret("acme", salt, legacy, "rp") == "shh"
    assert ring.seal_version("acme", salt, legacy, "rp") == 1


def test_a_version_1_seal_whose_nonce_looks_like_a_tag_still_opens() -> None:
    v1, v2 = secrets.token_bytes(32), secrets.token_bytes(32)
    ring = KeyRing([MasterKey(2, v2, KeyState.CURRENT), MasterKey(1, v1, KeyState.RETIRED)])
    salt = b"s" * 16
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"revocation-service/v1/client-secret-seal/acme",
    ).derive(v1)
    nonce = b"rk\x00\x02" + os.urandom(8)
    sealed = nonce + AESGCM(key).encrypt(nonce, b"shh", b"rp")
    assert ring.open_secret("acme", salt, sealed, "rp") == "shh"


def test_the_ring_file_is_0600_and_refused_when_broken(tmp_path: Path) -> None:
    path = tmp_path / KEY_RING_FILE
    keys = key_rotation.rotated(load_keys(tmp_path), stage=False, now=1)
    write_ring(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.id for k in parse_ring(path.read_text(), "x")] == [2, 1]

    two_current = json.loads(ring_json(keys))
    two_current["keys"][1]["state"] = "current"
    with pytest.raises(ConfigError, match="exactly one key must be current"):
        parse_ring(json.dumps(two_current), "x")
    with pytest.raises(ConfigError, match="not a key ring"):
        parse_ring('{"keys": [{"id": "1"}]}', "x")


def test_the_environment_key_must_belong_to_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = secrets.token_hex(32)
    monkeypatch.setenv(MASTER_KEY_ENV, env_key)
    ring = key_rotation.rotated(load_keys(tmp_path), stage=False, now=1)
    assert ring[1].secret.hex() == env_key  # version 1 is the key of the environment
    write_ring(tmp_path / KEY_RING_FILE, ring)
    assert [k.id for k in load_keys(tmp_path)] == [2, 1]
    monkeypatch.setenv(MASTER_KEY_ENV, secrets.token_hex(32))
    with pytest.raises(ConfigError, match="is not one of the keys of the ring"):
        load_keys(tmp_path)

    elsewhere = tmp_path / "secrets" / "ring.json"
    monkeypatch.delenv(MASTER_KEY_ENV)
    monkeypatch.setenv(MASTER_KEYS_FILE_ENV, str(elsewhere))
    with pytest.raises(ConfigError, match="names no file"):
        load_keys(tmp_path)
    write_ring(elsewhere, ring)
    assert [k.id for k in load_keys(tmp_path / "other")] == [2, 1]


def test_stage_then_rotate_promotes_the_staged_key() -> None:
    one = (MasterKey(1, secrets.token_bytes(32), KeyState.CURRENT),)
    staged = key_rotation.rotated(one, stage=True, now=5)
    assert [(k.id, k.state) for k in staged] == [(1, KeyState.CURRENT), (2, KeyState.STAGED)]
    with pytest.raises(Conflict, match="staged already"):
        key_rotation.rotated(staged, stage=True, now=6)
    promoted = key_rotation.rotated(staged, stage=False, now=7)
    assert [(k.id, k.state, k.retired_at) for k in promoted] == [
        (2, KeyState.CURRENT, None),
        (1, KeyState.RETIRED, 7),
    ]
    assert promoted[0].secret == staged[1].secret
    again = key_rotation.rotated(promoted, stage=False, now=8)
    assert [(k.id, k.state) for k in again] == [
        (3, KeyState.CURRENT),
        (2, KeyState.RETIRED),
        (1, KeyState.RETIRED),
    ]


def test_a_broken_ring_file_is_logged_and_the_keys_in_use_kept(tmp_path: Path) -> None:
    ring = KeyRing.load(tmp_path)
    (tmp_path / KEY_RING_FILE).write_text("{not json")
    with capture_logs() as logs:
        assert ring.refresh(force=True) is False
    assert [e["event"] for e in logs] == ["master_keys_reload_failed"]
    assert [k.id for k in ring.keys] == [1]


# --- through HTTP, on both stores -----------------------------------------------------


@asynccontextmanager
async def client_of(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def hs256_assertion(world: World, client_id: str) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": world.tenant.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, HS_SECRET.encode(), algorithm="HS256")


async def revoke_with_assertion(world: World, token: str) -> httpx.Response:
    assertion = hs256_assertion(world, "jwt-rp")
    return await world.tenant.revoke(
        token, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion
    )


async def acme(services: Services) -> Tenant:
    tenant = await services.store.get_tenant("acme")
    assert tenant is not None
    return tenant


async def test_rotation_keeps_every_stored_credential_revocable(
    services: Services, http: httpx.AsyncClient
) -> None:
    world = await make_world(http)
    tenant = world.tenant
    await tenant.client("jwt-rp", method="client_secret_jwt", secret=HS_SECRET)
    created = await http.post("/admin/v1/tenants/acme/admin-keys", headers=OPERATOR)
    admin_key_id, admin_key = created.json()["key_id"], created.json()["key"]
    now = int(time.time())
    issued = {"exp": now + HOUR, "iat": now}
    grant = {"client_id": "app", "grant_id": "g1", "sub": "alice", **issued}
    await tenant.register(
        {"token": "old-at", "type": "access_token", **grant},
        {"token": "old-rt", "type": "refresh_token", **grant},
        {"token": "old-revoked", "type": "access_token", "client_id": "app", **issued},
        {"token": "old-of-rp", "type": "access_token", "client_id": "jwt-rp", **issued},
    )
    assert (await tenant.revoke("old-revoked", auth=world.app)).status_code == 200
    old_hash = services.keys.token_hash("acme", (await acme(services)).key_salt, "old-at")

    rotation = await key_rotation.rotate(services, stage=False, now=now)

    assert [(k["id"], k["state"]) for k in rotation["keys"]] == [(2, "current"), (1, "retired")]
    assert (rotation["resealed"], rotation["unopened"]) == (1, 0)
    ring_file = services.config.data_dir / KEY_RING_FILE
    assert stat.S_IMODE(ring_file.stat().st_mode) == 0o600
    assert not (services.config.data_dir / MASTER_KEY_FILE).exists()

    # Old tokens are found (the resource server's basic secret is a version-1 hash too)
    # and revoked with the owner's version-1 secret; the grant cascade takes both.
    assert await world.active("old-at")
    assert (await tenant.revoke("old-rt", auth=world.app)).status_code == 200
    assert not await world.active("old-at")
    assert not await world.active("old-rt")
    assert await services.store.find_credential("acme", old_hash) is not None
    # A revoked token registered again keeps its old hash, so it stays revoked.
    again = await tenant.register(
        {"token": "old-revoked", "type": "access_token", "client_id": "app", **issued}
    )
    assert again == {"registered": 0, "duplicates": 1}
    assert not await world.active("old-revoked")

    # New tokens are hashed with the new key.
    await tenant.register({"token": "new-at", "type": "access_token", "client_id": "app"})
    new_hash = services.keys.token_hash("acme", (await acme(services)).key_salt, "new-at")
    assert new_hash[:2] == b"\x00\x02" and len(new_hash) == 34
    assert await services.store.find_credential("acme", new_hash) is not None
    assert await world.active("new-at")

    # The client_secret_jwt secret was re-sealed, and its assertions still verify.
    rp = await services.store.get_client("acme", "jwt-rp")
    assert rp is not None and rp.secret_encrypted is not None
    assert rp.secret_encrypted.startswith(b"rk\x00\x02")
    assert (await revoke_with_assertion(world, "old-of-rp")).status_code == 200
    assert not await world.active("old-of-rp")

    # A tenant admin key made under the old key still works.
    listed = await http.get(
        "/admin/v1/tenants/acme/clients", headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert listed.status_code == 200, listed.text

    # A service restarted after the rotation reads the ring from the data directory.
    restarted = await open_services(services.config, store=services.store)
    try:
        assert [k.id for k in restarted.keys.keys] == [2, 1]
        async with client_of(restarted) as other:
            again_world = World(
                WorldTenant(other, "acme", tenant.issuer),
                world.rs,
                world.app,
                world.other,
            )
            assert not await again_world.active("old-at")
            assert await again_world.active("new-at")
            assert (await again_world.tenant.revoke("new-at", auth=world.app)).status_code == 200
            assert not await again_world.active("new-at")
    finally:
        await restarted.close()

    # Retiring the old key is refused while anything stored depends on it.
    with pytest.raises(Conflict) as refused:
        await key_rotation.retire(services, 1, now=now)
    assert refused.value.extra["holds"] == {
        "credentials": 4,
        "client_secrets": 3,  # app, other, rs (jwt-rp's hash was made again with its seal)
        "sealed_secrets": 0,
        "admin_keys": 1,
        "signing_keys": 0,
    }
    with pytest.raises(Conflict, match="current key"):
        await key_rotation.retire(services, 2, now=now)
    with pytest.raises(NotFound):
        await key_rotation.retire(services, 7, now=now)

    # Once the credentials are past exp plus the retention period, the basic clients have
    # new secrets and the old admin key is replaced, key 1 can go.
    # Registrations take their exp from the wall clock, which moves on during the test.
    later = now + 2 * HOUR + services.config.credential_retention_s
    for client_id in ("app", "other", "rs"):
        await tenant.client(client_id, secret=NEW_SECRET, scope="introspect")
    deleted = await http.delete(
        f"/admin/v1/tenants/acme/admin-keys/{admin_key_id}", headers=OPERATOR
    )
    assert deleted.status_code == 204
    listing = await key_rotation.list_keys(services, later)
    nothing_else = {"admin_keys": 0, "signing_keys": 0}
    assert [(k["id"], k["holds"]) for k in listing["keys"]] == [
        (2, {"credentials": 0, "client_secrets": 4, "sealed_secrets": 1, **nothing_else}),
        (1, {"credentials": 0, "client_secrets": 0, "sealed_secrets": 0, **nothing_else}),
    ]
    retired = await key_rotation.retire(services, 1, now=later)
    assert [k["id"] for k in retired["keys"]] == [2]
    assert [k.id for k in services.keys.keys] == [2]
    assert [k.id for k in load_keys(services.config.data_dir)] == [2]

    rs = basic("rs", NEW_SECRET)
    await tenant.register({"token": "newest", "type": "access_token", "client_id": "app"})
    assert (await tenant.introspect("newest", rs))["active"] is True
    r = await revoke_with_assertion(world, "newest")
    assert r.status_code == 400  # a confidential client, another client's live token


async def test_a_process_that_has_not_reloaded_yet_finds_tokens_under_the_new_key(
    services: Services, http: httpx.AsyncClient
) -> None:
    """Workers of one data directory: one rotates and registers, another still holds the
    old ring in memory and must not miss the token (a miss looks at the ring file)."""
    world = await make_world(http)
    stale = KeyRing.load(services.config.data_dir)
    other = Services(
        services.config,
        services.store,
        stale,
        services.directory,
        services.operator_key,
        services.plugins,
        services.clock,
    )
    await key_rotation.rotate(services, stage=False, now=int(time.time()))
    await world.tenant.register({"token": "fresh", "type": "access_token", "client_id": "app"})
    assert [k.id for k in stale.keys] == [1]

    async with client_of(other) as http_other:
        r = await http_other.post(
            "/token/revoke", data={"token": "fresh"}, headers={"Tenant-ID": "acme", **world.app}
        )
        assert r.status_code == 200
    assert [k.id for k in stale.keys] == [2, 1]
    assert not await world.active("fresh")


async def test_a_staged_key_is_known_everywhere_before_anyone_writes_with_it(
    services: Services, http: httpx.AsyncClient
) -> None:
    """Instances with copies of the ring (MongoDB, several hosts): stage, deploy, rotate."""
    world = await make_world(http)
    staged = await key_rotation.rotate(services, stage=True, now=int(time.time()))
    assert [(k["id"], k["state"]) for k in staged["keys"]] == [(1, "current"), (2, "staged")]
    await world.tenant.register({"token": "under-1", "type": "access_token", "client_id": "app"})
    salt = (await acme(services)).key_salt
    assert len(services.keys.token_hash("acme", salt, "under-1")) == 32

    # Another host already has the promoted ring (key 2 current) and registers with it;
    # this instance, with key 2 staged, finds that token.
    promoted = key_rotation.rotated(services.keys.keys, stage=False, now=int(time.time()))
    ahead = KeyRing(promoted)
    other = Services(
        services.config,
        services.store,
        ahead,
        services.directory,
        services.operator_key,
        services.plugins,
        services.clock,
    )
    async with client_of(other) as http_ahead:
        r = await http_ahead.post(
            "/admin/v1/tenants/acme/credentials",
            json={
                "token": "under-2",
                "type": "access_token",
                "client_id": "app",
                "exp": 4_000_000_000,
            },
            headers=OPERATOR,
        )
        assert r.status_code in (200, 201), r.text
        assert await World(
            WorldTenant(http_ahead, "acme", world.tenant.issuer),
            world.rs,
            world.app,
            world.other,
        ).active("under-1")
    assert await world.active("under-2")

    done = await key_rotation.rotate(services, stage=False, now=int(time.time()))
    assert [(k["id"], k["state"]) for k in done["keys"]] == [(2, "current"), (1, "retired")]
    assert services.keys.current.secret == promoted[0].secret


async def test_tenant_file_clients_are_hashed_again_at_the_next_load(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_APP_SECRET", NEW_SECRET)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.toml").write_text(
        'tenant_id = "acme"\nissuer = "https://acme.example"\n'
        '[[clients]]\nclient_id = "app"\ntype = "confidential"\n'
        'client_secret = { env = "ACME_APP_SECRET" }\n'
    )
    await load_tenant_files(services, tenants)
    before = await services.store.get_client("acme", "app")
    assert before is not None and before.secret_hash is not None
    assert len(before.secret_hash) == 32

    await key_rotation.rotate(services, stage=False, now=int(time.time()))
    await load_tenant_files(services, tenants)
    after = await services.store.get_client("acme", "app")
    assert after is not None and after.secret_hash is not None
    assert after.secret_hash[:2] == b"\x00\x02"
    holds = (await key_rotation.census(services, int(time.time())))[1]
    assert holds.client_secrets == 0


async def test_a_missing_master_key_is_not_replaced_while_the_store_has_tenants(
    services: Services, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    await make_world(http)
    elsewhere = ServiceConfig(data_dir=tmp_path / "lost", tenants_dir=None)
    with pytest.raises(ConfigError, match="master key: is missing"):
        await open_services(elsewhere, store=services.store)
    assert not (tmp_path / "lost" / MASTER_KEY_FILE).exists()


# --- the command line -------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else None, json.loads(err) if err else None


def test_keys_commands_then_a_real_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    data = ["--data-dir", str(tmp_path / "data")]
    tenant = json.dumps({"issuer": "https://a.example"})
    assert run(capsys, "tenant", "put", "acme", "--from-json", tenant, *data)[0] == 0
    client = json.dumps({"type": "confidential", "scope": "introspect"})
    code, created, _ = run(capsys, "client", "put", "acme", "app", "--from-json", client, *data)
    secret = created["client_secret"]
    token = {"token": "t1", "type": "access_token", "client_id": "app", "exp": 4_000_000_000}
    assert (
        run(capsys, "credential", "register", "acme", "--from-json", json.dumps(token), *data)[0]
        == 0
    )

    code, listed, _ = run(capsys, "keys", "list", *data)
    assert code == 0 and listed["ring"] is None
    holds = {"credentials": 1, "client_secrets": 1, "sealed_secrets": 0, "admin_keys": 0}
    holds["signing_keys"] = 0
    assert listed["keys"] == [{"id": 1, "state": "current", "holds": holds}]

    code, rotated, err = run(capsys, "keys", "rotate", *data)
    assert code == 0 and err is None
    assert [(k["id"], k["state"]) for k in rotated["keys"]] == [(2, "current"), (1, "retired")]
    ring = load_keys(tmp_path / "data")
    assert not any(k.secret.hex() in json.dumps(rotated) for k in ring)  # never a key

    code, _, err = run(capsys, "keys", "retire", "1", *data)
    assert code == 1 and err["error"] == "conflict"
    assert "1 credentials" in err["error_description"]
    code, listed, _ = run(capsys, "keys", "list", *data)
    assert listed["ring"] == str(tmp_path / "data" / KEY_RING_FILE)
    assert [k["id"] for k in listed["keys"]] == [2, 1]
    code, resealed, _ = run(capsys, "keys", "reseal", *data)
    assert code == 0 and resealed == {"resealed": 0, "unopened": 0}

    # The service started on the rotated data directory: the old token is found and
    # revoked with the client's old secret.
    env = {"REVOCATION_ADMIN_KEY": "rotation-operator-key-0123456789"}
    with (
        running_server([*data, "--no-tenants"], cwd=tmp_path, env=env) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        app = {"Tenant-ID": "acme", **basic("app", secret)}
        r = http.post("/token/introspect", data={"token": "t1"}, headers=app)
        assert r.json()["active"] is True
        assert http.post("/token/revoke", data={"token": "t1"}, headers=app).status_code == 200
        r = http.post("/token/introspect", data={"token": "t1"}, headers=app)
        assert r.json()["active"] is False


def test_keys_in_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "--help"])
    out, _ = capsys.readouterr()
    for action in ("list", "rotate", "retire", "reseal"):
        assert action in out
