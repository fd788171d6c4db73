"""Declarative tenants from tenants/*.toml."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.bootstrap import open_services
from app.config import ServiceConfig
from app.errors import ConfigError, StoreUnavailable
from app.serve import prepare
from app.services import Services
from app.tenant_files import load_tenant_files
from tests.support.world import OPERATOR, basic

SHIPPED = Path(__file__).resolve().parent.parent / "tenants"


async def test_shipped_tenant_files_load(services: Services, http: httpx.AsyncClient) -> None:
    loaded = await load_tenant_files(services, SHIPPED)
    assert sorted(loaded) == ["c2id-demo", "cie-demo", "demo", "spid-demo"]
    r = await http.get("http://127.0.0.1:8000/t/demo/.well-known/openid-configuration")
    assert r.json()["revocation_endpoint"] == "http://127.0.0.1:8000/t/demo/token/revoke"
    r = await http.get("/admin/v1/tenants/spid-demo", headers=OPERATOR)
    assert r.json()["settings"]["revocation"]["cascade"] == "spid"


async def test_loading_twice_changes_nothing(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_SECRET", "from-the-environment-0123")
    (tmp_path / "a.toml").write_text(
        'tenant_id = "filed"\nissuer = "https://filed.example"\n'
        '[[clients]]\nclient_id = "backend"\ntype = "confidential"\n'
        'token_endpoint_auth_method = "client_secret_jwt"\n'
        'client_secret = { env = "BACKEND_SECRET" }\n'
    )
    await load_tenant_files(services, tmp_path)
    tenant = await services.store.get_tenant("filed")
    client = await services.store.get_client("filed", "backend")
    assert tenant is not None and client is not None
    await load_tenant_files(services, tmp_path)
    # Nothing was written again: same records, same update times, same sealed secret.
    assert await services.store.get_tenant("filed") == tenant
    assert await services.store.get_client("filed", "backend") == client


async def test_secret_from_the_environment_authenticates(
    services: Services, http: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_SECRET", "from-the-environment-0123")
    (tmp_path / "a.toml").write_text(
        'tenant_id = "filed"\nissuer = "https://filed.example"\n'
        '[[clients]]\nclient_id = "backend"\ntype = "confidential"\n'
        'client_secret = { env = "BACKEND_SECRET" }\n'
    )
    await load_tenant_files(services, tmp_path)
    r = await http.post(
        "https://filed.example/token/revoke",
        data={"token": "x"},
        headers=basic("backend", "from-the-environment-0123"),
    )
    assert r.status_code == 200
    r = await http.post(
        "https://filed.example/token/revoke", data={"token": "x"}, headers=basic("backend", "guess")
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('issuer = "https://x.example"', "tenant_id", "required"),
        ('tenant_id = "Bad Id"\nissuer = "https://x.example"', "tenant_id", "must match"),
        ('tenant_id = "x"', "issuer", "required"),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[revocation]\ncascade = "all"',
            "revocation.cascade",
            "one of",
        ),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[revocation]\ncascad = "grant"',
            "revocation.cascad",
            "unknown",
        ),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[[clients]]\nclient_id = "c"\ntype = "confidential"\nclient_secret = "plaintext"',
            "clients[0].client_secret",
            "never plaintext",
        ),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[[clients]]\nclient_id = "c"\ntype = "confidential"\nclient_secret = { env = "NOT_SET_ANYWHERE_42" }',
            "clients[0].client_secret",
            "NOT_SET_ANYWHERE_42",
        ),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[[clients]]\nclient_id = "c"\ntype = "confidential"',
            "clients[0].client_secret",
            "required",
        ),
        (
            'tenant_id = "x"\nissuer = "https://x.example"\n[[clients]]\nclient_id = "c"\ntype = "strange"',
            "clients[0].type",
            "",
        ),
        (
            'tenant_id = "x"\nissuer = ',
            "issuer (line 2, column 9)",
            "not valid TOML: Invalid value",
        ),
        ("[t]\na = 1\n[t]\n", "t (line 3, column 3)", "not valid TOML: Cannot declare"),
    ],
)
async def test_errors_name_file_key_and_reason(
    services: Services, tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        await load_tenant_files(services, tmp_path)
    assert caught.value.source == str(path)
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert 'plaintext"' not in str(caught.value)


async def test_issuer_clash_between_files(services: Services, tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('tenant_id = "a"\nissuer = "https://same.example"')
    (tmp_path / "b.toml").write_text('tenant_id = "b"\nissuer = "https://SAME.example/"')
    with pytest.raises(ConfigError) as caught:
        await load_tenant_files(services, tmp_path)
    # Both files and the tenant holding the issuer are named; neither tenant was stored.
    assert caught.value.source.endswith("b.toml")
    assert caught.value.key == "issuer"
    assert "tenant 'a'" in caught.value.reason
    assert str(tmp_path / "a.toml") in caught.value.reason
    assert await services.store.get_tenant("a") is None


async def test_alias_clash_with_a_stored_tenant_names_it_and_the_alias(
    services: Services, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    r = await http.put(
        "/admin/v1/tenants/held", headers=OPERATOR, json={"issuer": "https://held.example"}
    )
    assert r.status_code == 201
    (tmp_path / "a.toml").write_text(
        'tenant_id = "a"\nissuer = "https://a.example"\n'
        'issuer_aliases = ["https://a2.example", "https://held.example/"]'
    )
    with pytest.raises(ConfigError) as caught:
        await load_tenant_files(services, tmp_path)
    assert caught.value.key == "issuer_aliases[1]"
    assert "tenant 'held'" in caught.value.reason
    assert "declared in no file" in caught.value.reason


async def test_an_issuer_moves_between_tenants_declared_in_the_files(
    services: Services, tmp_path: Path
) -> None:
    (tmp_path / "a.toml").write_text('tenant_id = "a"\nissuer = "https://moving.example"')
    await load_tenant_files(services, tmp_path)
    # b.toml sorts after a.toml, but the clash is judged on the tenants as they will be.
    (tmp_path / "a.toml").write_text('tenant_id = "a"\nissuer = "https://a.example"')
    (tmp_path / "b.toml").write_text('tenant_id = "b"\nissuer = "https://moving.example"')
    assert await load_tenant_files(services, tmp_path) == ["a", "b"]


async def test_one_tenant_id_in_two_files(services: Services, tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('tenant_id = "x"\nissuer = "https://a.example"')
    (tmp_path / "b.toml").write_text('tenant_id = "x"\nissuer = "https://b.example"')
    with pytest.raises(ConfigError) as caught:
        await load_tenant_files(services, tmp_path)
    assert (caught.value.source, caught.value.key) == (str(tmp_path / "b.toml"), "tenant_id")
    assert str(tmp_path / "a.toml") in caught.value.reason


async def _snapshot(services: Services) -> tuple[object, ...]:
    tenants = await services.store.list_tenants()
    clients = [await services.store.list_clients(t.tenant_id) for t in tenants]
    return (tenants, clients)


async def test_all_or_nothing_when_the_second_file_fails(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKEND_SECRET", "from-the-environment-0123")
    (tmp_path / "a.toml").write_text(
        'tenant_id = "a"\nissuer = "https://a.example"\n'
        '[[clients]]\nclient_id = "spa"\ntype = "public"\ntoken_endpoint_auth_method = "none"\n'
    )
    await load_tenant_files(services, tmp_path)
    before = await _snapshot(services)
    # a.toml changes its tenant and adds a client and a new tenant comes first; then
    # z.toml is wrong: nothing of the three files reaches the store.
    (tmp_path / "0-new.toml").write_text('tenant_id = "new"\nissuer = "https://new.example"')
    (tmp_path / "a.toml").write_text(
        'tenant_id = "a"\nissuer = "https://a.example"\n[revocation]\ncascade = "token"\n'
        '[[clients]]\nclient_id = "spa"\ntype = "public"\ntoken_endpoint_auth_method = "none"\n'
        '[[clients]]\nclient_id = "backend"\ntype = "confidential"\n'
        'client_secret = { env = "BACKEND_SECRET" }\n'
    )
    (tmp_path / "z.toml").write_text('tenant_id = "z"\nissuer = "https://z.example"\nenabled = 1')
    with pytest.raises(ConfigError) as caught:
        await load_tenant_files(services, tmp_path)
    assert (caught.value.source, caught.value.key) == (str(tmp_path / "z.toml"), "enabled")
    assert await _snapshot(services) == before


async def test_a_failed_write_puts_back_what_earlier_files_wrote(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.toml").write_text('tenant_id = "a"\nissuer = "https://a.example"')
    await load_tenant_files(services, tmp_path)
    before = await _snapshot(services)
    (tmp_path / "a.toml").write_text(
        'tenant_id = "a"\nissuer = "https://a.example"\n[revocation]\ncascade = "token"\n'
    )
    (tmp_path / "b.toml").write_text(
        'tenant_id = "b"\nissuer = "https://b.example"\n'
        '[[clients]]\nclient_id = "spa"\ntype = "public"\ntoken_endpoint_auth_method = "none"\n'
    )
    put_client = services.store.put_client

    async def unreachable(client: object) -> None:  # the store goes away at b's client
        raise StoreUnavailable("gone")

    monkeypatch.setattr(services.store, "put_client", unreachable)
    with pytest.raises(StoreUnavailable):
        await load_tenant_files(services, tmp_path)
    monkeypatch.setattr(services.store, "put_client", put_client)
    assert await _snapshot(services) == before


async def test_start_up_finishes_a_deletion_left_half_done_before_loading_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVOCATION_ADMIN_KEY", "an-operator-key-for-this-test-0123")
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "x.toml").write_text('tenant_id = "x"\nissuer = "https://x.example"')
    config = ServiceConfig(data_dir=tmp_path / "data", tenants_dir=tenants)
    await prepare(config)

    services = await open_services(config)
    try:

        async def stopped(tenant_id: str) -> None:  # the process died after the first step
            raise StoreUnavailable("stopped")

        monkeypatch.setattr(services.store, "_delete_tenant_data", stopped)
        with pytest.raises(StoreUnavailable):
            await services.store.delete_tenant("x")
    finally:
        await services.store.close()

    await prepare(config)  # would be a ConfigError for x.toml while x's id is held

    services = await open_services(config)
    try:
        assert await services.store.get_tenant("x") is not None
        assert await services.store.finish_deletions() == 0
    finally:
        await services.store.close()


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        ('name = "nowhere"', "plugins.enabled[0].name", "no plugin named 'nowhere'"),
        ('name = "revoke_veto"\nconfig = { clients = 3 }', "plugins.enabled[0].config", "clients"),
    ],
)
async def test_a_tenant_file_enables_only_plugins_that_exist_with_good_config(
    services: Services, tmp_path: Path, entry: str, key: str, says: str
) -> None:
    (tmp_path / "p.toml").write_text(
        f'tenant_id = "plugged"\nissuer = "https://plugged.example"\n[[plugins.enabled]]\n{entry}\n'
    )
    with pytest.raises(ConfigError) as raised:
        await load_tenant_files(services, tmp_path)
    assert raised.value.key == key
    assert says in raised.value.reason
    assert await services.store.get_tenant("plugged") is None


async def test_a_tenant_file_stores_a_plugins_normalised_config(
    services: Services, tmp_path: Path
) -> None:
    (tmp_path / "p.toml").write_text(
        'tenant_id = "plugged"\nissuer = "https://plugged.example"\n'
        '[[plugins.enabled]]\nname = "confidential_only"\n'
    )
    await load_tenant_files(services, tmp_path)
    tenant = await services.store.get_tenant("plugged")
    assert tenant is not None
    assert tenant.settings["plugins"]["enabled"] == [
        {"name": "confidential_only", "config": {"endpoints": ["revocation", "introspection"]}}
    ]
