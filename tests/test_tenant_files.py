"""Declarative tenants from tenants/*.toml."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.errors import ConfigError
from app.services import Services
from app.tenant_files import load_tenant_files
from tests.support.world import OPERATOR, basic

SHIPPED = Path(__file__).resolve().parent.parent / "tenants"


async def test_shipped_tenant_files_load(services: Services, http: httpx.AsyncClient) -> None:
    loaded = await load_tenant_files(services, SHIPPED)
    assert sorted(loaded) == ["c2id-demo", "demo", "spid-demo"]
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
        ('tenant_id = "x"\nissuer = ', "", "TOML"),
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
    assert caught.value.source.endswith("b.toml")
    assert caught.value.key == "issuer"
