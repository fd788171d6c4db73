"""Tenants: create, replace, read, merge-patch, delete, list; issuer clashes."""

from __future__ import annotations

import httpx
import pytest

from app.errors import StoreUnavailable
from app.housekeeping import finish_deletions
from app.services import Services
from app.settings import effective
from tests.admin.conftest import (
    ACME_ISSUER,
    API,
    credential,
    put_client,
    put_tenant,
    tenant_url,
)


async def test_put_creates_then_replaces(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    created = await put_tenant(http, operator, "acme", {"issuer": ACME_ISSUER})
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    assert set(body) == {"tenant_id", "settings", "created_at", "updated_at"}
    assert body["tenant_id"] == "acme"
    assert body["settings"] == effective({"issuer": ACME_ISSUER})
    replaced = await put_tenant(
        http, operator, "acme", {"issuer": ACME_ISSUER, "revocation": {"cascade": "token"}}
    )
    assert replaced.status_code == 200
    assert replaced.json()["settings"]["revocation"]["cascade"] == "token"
    assert replaced.json()["created_at"] == body["created_at"]
    got = await http.get(tenant_url("acme"), headers=operator)
    assert got.status_code == 200
    assert got.json() == replaced.json()


async def test_put_replaces_settings_and_keeps_clients_and_credentials(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str, services: Services
) -> None:
    await put_tenant(
        http, operator, acme, {"issuer": ACME_ISSUER, "revocation": {"cascade": "subject"}}
    )
    registered = await http.post(
        tenant_url(acme, "/credentials"), json=credential("tok-1"), headers=operator
    )
    assert registered.json() == {"registered": 1, "duplicates": 0}
    before = await services.store.get_tenant(acme)
    replaced = await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER})
    assert replaced.status_code == 200
    assert replaced.json()["settings"]["revocation"]["cascade"] == "grant"  # not kept
    assert (await http.get(tenant_url(acme, "/clients/app"), headers=operator)).status_code == 200
    after = await services.store.get_tenant(acme)
    assert before is not None and after is not None
    assert after.key_salt == before.key_salt
    token_hash = services.keys.token_hash(acme, after.key_salt, "tok-1")
    assert await services.store.find_credential(acme, token_hash) is not None
    again = await http.post(
        tenant_url(acme, "/credentials"), json=credential("tok-1"), headers=operator
    )
    assert again.json() == {"registered": 0, "duplicates": 1}


async def test_tenant_id_in_body_must_match_path(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    same = await put_tenant(http, operator, "acme", {"tenant_id": "acme", "issuer": ACME_ISSUER})
    assert same.status_code == 201
    other = await put_tenant(http, operator, "acme", {"tenant_id": "beta", "issuer": ACME_ISSUER})
    assert other.status_code == 400
    assert other.json()["field"] == "tenant_id"


@pytest.mark.parametrize("tenant_id", ["Acme", "-acme", "a" * 64, "ac_me", "acme%2Fx"])
async def test_bad_tenant_id(
    http: httpx.AsyncClient, operator: dict[str, str], tenant_id: str
) -> None:
    response = await http.put(tenant_url(tenant_id), json={"issuer": ACME_ISSUER}, headers=operator)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["field"] == "tenant_id"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({}, "issuer"),
        ({"issuer": "ftp://acme.example"}, "issuer"),
        ({"issuer": ACME_ISSUER, "revocation": {"cascade": "everything"}}, "revocation.cascade"),
        ({"issuer": ACME_ISSUER, "revocation": {"nope": True}}, "revocation.nope"),
        ({"issuer": ACME_ISSUER, "colour": "blue"}, "colour"),
        ({"issuer": ACME_ISSUER, "issuer_aliases": ["https://a.example", 3]}, "issuer_aliases[1]"),
        ({"issuer": ACME_ISSUER, "issuer_aliases": [ACME_ISSUER + "/"]}, "issuer_aliases"),
        (
            {"issuer": ACME_ISSUER, "plugins": {"enabled": [{"name": "x", "y": 1}]}},
            "plugins.enabled[0].y",
        ),
    ],
)
async def test_invalid_settings_name_the_field(
    http: httpx.AsyncClient, operator: dict[str, str], settings: dict[str, object], field: str
) -> None:
    response = await put_tenant(http, operator, "acme", settings)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == field
    assert body["error_description"]
    assert (await http.get(tenant_url("acme"), headers=operator)).status_code == 404


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"issuer=https://acme.example", "application/x-www-form-urlencoded"),
        (b'{"issuer": "https://acme.example"}', "text/plain"),
        (b"\xff\xfe", "application/json"),
        (b'{"issuer": NaN}', "application/json"),
    ],
)
async def test_non_json_bodies_are_400(
    http: httpx.AsyncClient, operator: dict[str, str], content: bytes, content_type: str
) -> None:
    response = await http.put(
        tenant_url("acme"), content=content, headers=operator | {"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["cache-control"] == "no-store"


async def test_body_must_be_an_object(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await http.put(tenant_url("acme"), json=[ACME_ISSUER], headers=operator)
    assert response.status_code == 400
    assert response.json()["field"] == ""


async def test_patch_merges_objects_replaces_arrays_and_null_resets(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    await put_tenant(
        http,
        operator,
        "acme",
        {
            "issuer": ACME_ISSUER,
            "revocation": {"cascade": "subject", "allow_revoke_all": True},
            "cors": {"allowed_origins": ["https://a.example", "https://b.example"]},
            "auth": {"clock_skew_s": 10},
        },
    )
    response = await http.patch(
        tenant_url("acme"),
        json={
            "revocation": {"cascade": "token"},
            "cors": {"allowed_origins": ["https://c.example"]},
            "auth": {"clock_skew_s": None},
        },
        headers=operator,
    )
    assert response.status_code == 200
    settings = response.json()["settings"]
    assert settings["revocation"]["cascade"] == "token"
    assert settings["revocation"]["allow_revoke_all"] is True  # merged, kept
    assert settings["cors"]["allowed_origins"] == ["https://c.example"]  # replaced
    assert settings["auth"]["clock_skew_s"] == 60  # reset to the default
    assert (await http.get(tenant_url("acme"), headers=operator)).json()["settings"] == settings


async def test_patch_is_validated_as_a_whole(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    bad = await http.patch(tenant_url(acme), json={"revocation": {"cascade": 1}}, headers=operator)
    assert bad.status_code == 400
    assert bad.json()["field"] == "revocation.cascade"
    no_issuer = await http.patch(tenant_url(acme), json={"issuer": None}, headers=operator)
    assert no_issuer.status_code == 400
    assert no_issuer.json()["field"] == "issuer"
    unchanged = await http.get(tenant_url(acme), headers=operator)
    assert unchanged.json()["settings"]["revocation"]["cascade"] == "grant"
    assert unchanged.json()["settings"]["issuer"] == ACME_ISSUER


async def test_patch_and_get_of_a_missing_tenant_are_404(
    http: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    patched = await http.patch(tenant_url("ghost"), json={"enabled": False}, headers=operator)
    assert patched.status_code == 404
    assert patched.json()["error"] == "not_found"
    assert (await http.get(tenant_url("ghost"), headers=operator)).status_code == 404
    assert (await http.delete(tenant_url("ghost"), headers=operator)).status_code == 404


async def test_list_and_delete(http: httpx.AsyncClient, operator: dict[str, str]) -> None:
    await put_tenant(http, operator, "beta", {"issuer": "https://beta.example", "enabled": False})
    await put_tenant(http, operator, "acme", {"issuer": ACME_ISSUER})
    listed = await http.get(f"{API}/tenants", headers=operator)
    assert listed.status_code == 200
    assert listed.json() == {
        "tenants": [
            {"tenant_id": "acme", "issuer": ACME_ISSUER, "enabled": True},
            {"tenant_id": "beta", "issuer": "https://beta.example", "enabled": False},
        ]
    }
    deleted = await http.delete(tenant_url("beta"), headers=operator)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert deleted.headers["cache-control"] == "no-store"
    assert (await http.get(tenant_url("beta"), headers=operator)).status_code == 404
    listed = await http.get(f"{API}/tenants", headers=operator)
    assert [t["tenant_id"] for t in listed.json()["tenants"]] == ["acme"]


async def test_delete_removes_the_tenants_data(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    await http.delete(tenant_url(acme), headers=operator)
    await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER})
    assert (await http.get(tenant_url(acme, "/clients/app"), headers=operator)).status_code == 404
    assert (await http.get(tenant_url(acme, "/clients"), headers=operator)).json() == {
        "clients": []
    }


async def test_a_tenant_whose_deletion_was_interrupted_is_gone_and_its_id_held(
    http: httpx.AsyncClient,
    operator: dict[str, str],
    acme: str,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = await http.post(
        tenant_url(acme, "/credentials"),
        headers=operator,
        json=[credential("old-token", sub="alice")],
    )
    assert registered.status_code == 200, registered.text
    alice = tenant_url(acme, "/subjects/alice/clients")
    assert (await http.get(alice, headers=operator)).json()["clients"] != []

    async def stopped(tenant_id: str) -> None:  # the process died after the first step
        raise StoreUnavailable("stopped")

    monkeypatch.setattr(services.store, "_delete_tenant_data", stopped)
    interrupted = await http.delete(tenant_url(acme), headers=operator)
    assert interrupted.status_code == 503
    assert interrupted.json()["error"] == "temporarily_unavailable"
    monkeypatch.undo()

    assert (await http.get(tenant_url(acme), headers=operator)).status_code == 404
    held = await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER})
    assert held.status_code == 409
    assert held.json()["error"] == "conflict"
    assert "being deleted" in held.json()["error_description"]

    assert await finish_deletions(services) == 1
    assert (await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER})).status_code == 201
    assert (await http.get(alice, headers=operator)).json()["clients"] == []


@pytest.mark.parametrize(
    "taken",
    [
        "https://acme.example",
        "https://acme.example/",
        "https://ACME.example",
        "HTTPS://acme.example:443",
        "https://alias.acme.example",
        "https://Alias.Acme.Example:443/",
    ],
)
async def test_issuer_or_alias_clash_is_409(
    http: httpx.AsyncClient, operator: dict[str, str], taken: str
) -> None:
    first = await put_tenant(
        http,
        operator,
        "acme",
        {"issuer": ACME_ISSUER, "issuer_aliases": ["https://alias.acme.example"]},
    )
    assert first.status_code == 201
    as_issuer = await put_tenant(http, operator, "beta", {"issuer": taken})
    assert as_issuer.status_code == 409
    assert as_issuer.json()["error"] == "conflict"
    as_alias = await put_tenant(
        http,
        operator,
        "beta",
        {"issuer": "https://beta.example", "issuer_aliases": [taken]},
    )
    assert as_alias.status_code == 409
    assert (await http.get(tenant_url("beta"), headers=operator)).status_code == 404
    await put_tenant(http, operator, "beta", {"issuer": "https://beta.example"})
    patched = await http.patch(
        tenant_url("beta"), json={"issuer_aliases": [taken]}, headers=operator
    )
    assert patched.status_code == 409


async def test_a_tenant_may_reuse_its_own_issuer(
    http: httpx.AsyncClient, operator: dict[str, str], acme: str
) -> None:
    response = await put_tenant(http, operator, acme, {"issuer": ACME_ISSUER + "/"})
    assert response.status_code == 200
    freed = await put_tenant(http, operator, acme, {"issuer": "https://acme2.example"})
    assert freed.status_code == 200
    assert (await put_tenant(http, operator, "beta", {"issuer": ACME_ISSUER})).status_code == 201


async def test_writes_are_seen_by_the_directory_at_once(
    http: httpx.AsyncClient, operator: dict[str, str], services: Services
) -> None:
    await put_tenant(http, operator, "acme", {"issuer": ACME_ISSUER})
    await services.directory.refresh()
    assert services.directory.by_issuer(ACME_ISSUER) is not None
    await http.patch(tenant_url("acme"), json={"issuer": "https://new.example"}, headers=operator)
    await services.directory.refresh()
    assert services.directory.by_issuer(ACME_ISSUER) is None
    view = services.directory.by_issuer("https://new.example")
    assert view is not None and view.tenant_id == "acme"
    await put_client(http, operator, "acme", "late", {"type": "public"})
    client = await services.directory.client("acme", "late")
    assert client is not None
