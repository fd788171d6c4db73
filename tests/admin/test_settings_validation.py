"""Tenant settings are checked as strictly as the rest of the admin API (contract 5, 8).

Every bad value is ``400 invalid_request`` naming the dotted key and the reason, by
``PUT`` and by ``PATCH``, and nothing is stored; tenant files get the same checks, with
the file, the key and the reason, and then no file changes the store.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.errors import ConfigError
from app.services import Services
from app.settings import FIELDS
from app.tenant_files import load_tenant_files
from tests.support.issuer_keys import ec_key
from tests.support.world import OPERATOR

ISSUER = "https://acme.example"
KEY = ec_key("k1")
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PRIVATE_JWK = jwt.algorithms.ECAlgorithm.to_jwk(PRIVATE_KEY, as_dict=True)

BAD: list[tuple[dict[str, Any], str, str]] = [
    # (settings besides the issuer, the field named, words of the reason)
    ({"plugins": {"enabled": ["grant"]}}, "plugins.enabled[0]", "object"),
    ({"plugins": {"enabled": [{"name": "grant"}]}}, "plugins.enabled[0].name", "no plugin"),
    ({"plugins": {"enabled": [{"name": "grant", "cfg": {}}]}}, "plugins.enabled[0].cfg", ""),
    # A dotted name was stored as given, and read by no one.
    ({"plugins.enabled": [{"name": "grant"}]}, "plugins.enabled", "dotted"),
    ({"revocation.cascade": "token"}, "revocation.cascade", "dotted"),
    ({"revocation": {"cascade.x": "token"}}, "revocation.cascade.x", "dotted"),
    # Lists: each entry once, and a list that would refuse every client is refused.
    ({"auth": {"methods": []}}, "auth.methods", "at least one"),
    ({"auth": {"methods": ["none", "none"]}}, "auth.methods[1]", "repeats"),
    ({"auth": {"assertion_algs": ["ES256", "RS256", "ES256"]}}, "auth.assertion_algs[2]", "repeats"),
    ({"key_fetch": {"allowed_hosts": ["a.example", "a.example"]}}, "key_fetch.allowed_hosts[1]", "repeats"),
    ({"cors": {"allowed_origins": ["https://app.example", "https://App.example:443"]}}, "cors.allowed_origins[1]", "repeats"),
    ({"cors": {"allowed_origins": ["https://app.example:99999"]}}, "cors.allowed_origins[0]", "port"),
    ({"issuer_aliases": ["https://alias.example", "https://Alias.example/"]}, "issuer_aliases", "repeats"),
    # URLs: no white space or control character, which urlsplit would drop or keep.
    ({"issuer_aliases": ["https://alias.example/t\t"]}, "issuer_aliases[0]", "spaces"),
    ({"jwt_access_tokens": {"jwks_uri": " https://keys.example/jwks"}}, "jwt_access_tokens.jwks_uri", "spaces"),
    # The tenant's JWT keys: public signature keys only, from one source.
    ({"jwt_access_tokens": {"jwks": {"keys": [PRIVATE_JWK]}}}, "jwt_access_tokens.jwks.keys[0]", "secret"),
    ({"jwt_access_tokens": {"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}}, "jwt_access_tokens.jwks.keys[0]", "secret"),
    ({"jwt_access_tokens": {"jwks": {"keys": []}}}, "jwt_access_tokens.jwks", "no usable"),
    ({"jwt_access_tokens": {"jwks": {"keys": [KEY.jwk(use="enc")]}}}, "jwt_access_tokens.jwks", "no usable"),
    ({"jwt_access_tokens": {"jwks": KEY.jwks(), "jwks_uri": "https://keys.example/jwks"}}, "jwt_access_tokens.jwks_uri", "not both"),
    # Types, bounds, empty strings, unknown keys.
    ({"revocation": {"cascade": ["grant"]}}, "revocation.cascade", "one of"),
    ({"revocation": "grant"}, "revocation", "object"),
    ({"auth": {"clock_skew_s": -1}}, "auth.clock_skew_s", "between"),
    ({"auth": {"max_assertion_lifetime_s": 1.5}}, "auth.max_assertion_lifetime_s", "whole"),
    ({"rate_limits": {"per_client_per_minute": 0}}, "rate_limits.per_client_per_minute", "between"),
    ({"jsonp": {"enabled": "yes"}}, "jsonp.enabled", "true or false"),
    ({"jwt_access_tokens": {"grant_claim": ""}}, "jwt_access_tokens.grant_claim", "name"),
    ({"revocation": {"unknown": True}}, "revocation.unknown", "unknown"),
    ({"unknown": True}, "unknown", "unknown"),
]  # fmt: skip


@pytest.fixture
async def acme(http: httpx.AsyncClient) -> dict[str, Any]:
    """Tenant ``acme`` as stored before each bad write."""
    r = await http.put("/admin/v1/tenants/acme", json={"issuer": ISSUER}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    stored: dict[str, Any] = r.json()
    return stored


async def assert_unchanged(http: httpx.AsyncClient, before: dict[str, Any]) -> None:
    r = await http.get("/admin/v1/tenants/acme", headers=OPERATOR)
    assert r.json()["settings"] == before["settings"]


def assert_refused(r: httpx.Response, field: str, says: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "invalid_request"
    assert body["field"] == field, body
    assert says in body["error_description"], body


@pytest.mark.parametrize(("settings", "field", "says"), BAD)
async def test_bad_settings_are_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, acme: dict[str, Any], settings: dict[str, Any], field: str, says: str
) -> None:
    r = await http.put(
        "/admin/v1/tenants/acme", json={"issuer": ISSUER, **settings}, headers=OPERATOR
    )
    assert_refused(r, field, says)
    await assert_unchanged(http, acme)
    r = await http.patch("/admin/v1/tenants/acme", json=settings, headers=OPERATOR)
    assert_refused(r, field, says)
    await assert_unchanged(http, acme)
    r = await http.put(
        "/admin/v1/tenants/new",
        json={"issuer": "https://new.example", **settings},
        headers=OPERATOR,
    )
    assert_refused(r, field, says)
    r = await http.get("/admin/v1/tenants/new", headers=OPERATOR)
    assert r.status_code == 404


async def test_every_setting_refuses_a_value_of_another_type(
    http: httpx.AsyncClient, acme: dict[str, Any]
) -> None:
    for name, value in itertools.product(sorted(FIELDS), [{"x": 1}, [1], 1.5]):
        *groups, leaf = name.split(".")
        patch: dict[str, Any] = {leaf: value}
        for group in reversed(groups):
            patch = {group: patch}
        r = await http.patch("/admin/v1/tenants/acme", json=patch, headers=OPERATOR)
        assert r.status_code == 400, (name, value, r.text)
        assert r.json()["field"].startswith(name), (value, r.json())
    await assert_unchanged(http, acme)


async def test_good_settings_are_kept_as_given(
    http: httpx.AsyncClient, acme: dict[str, Any]
) -> None:
    """The control: the same kinds of value, written correctly, are stored."""
    settings = {
        "auth": {"methods": ["client_secret_basic", "none"], "assertion_algs": ["ES256"]},
        "cors": {"allowed_origins": ["*", "https://app.example"]},
        "key_fetch": {"allowed_hosts": ["keys.example", "*.keys.example"]},
        "jwt_access_tokens": {"jwks": KEY.jwks()},
        "plugins": {"enabled": [{"name": "confidential_only"}]},
    }
    r = await http.patch("/admin/v1/tenants/acme", json=settings, headers=OPERATOR)
    assert r.status_code == 200, r.text
    stored = r.json()["settings"]
    assert stored["auth"]["methods"] == ["client_secret_basic", "none"]
    assert stored["cors"]["allowed_origins"] == ["*", "https://app.example"]
    assert stored["key_fetch"]["allowed_hosts"] == ["keys.example", "*.keys.example"]
    assert stored["plugins"]["enabled"][0]["name"] == "confidential_only"
    # Switching key source takes the old one out in the same patch.
    swap = {"jwt_access_tokens": {"jwks": None, "jwks_uri": "https://keys.example/jwks"}}
    r = await http.patch("/admin/v1/tenants/acme", json=swap, headers=OPERATOR)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "key", "says"),
    [
        ('plugins.enabled = ["grant"]', "plugins.enabled[0]", "object"),
        ('[[plugins.enabled]]\nname = "grant"', "plugins.enabled[0].name", "no plugin"),
        ('"revocation.cascade" = "token"', "revocation.cascade", "dotted"),
        ("auth.methods = []", "auth.methods", "at least one"),
        ('auth.methods = ["none", "none"]', "auth.methods[1]", "repeats"),
    ],
)
async def test_tenant_files_get_the_same_checks(
    services: Services, tmp_path: Path, body: str, key: str, says: str
) -> None:
    (tmp_path / "a.toml").write_text('tenant_id = "first"\nissuer = "https://first.example"\n')
    (tmp_path / "b.toml").write_text(
        f'tenant_id = "filed"\nissuer = "https://filed.example"\n{body}\n'
    )
    with pytest.raises(ConfigError) as raised:
        await load_tenant_files(services, tmp_path)
    assert raised.value.source == str(tmp_path / "b.toml")
    assert raised.value.key == key
    assert says in raised.value.reason
    # All or nothing: the good file before it changed nothing either.
    assert await services.store.get_tenant("first") is None
    assert await services.store.get_tenant("filed") is None


async def test_a_tenant_file_may_enable_an_upload_of_its_existing_tenant(
    http: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    """Uploads exist only for tenants that exist: a file for another tenant id cannot
    name one."""
    r = await http.put(
        "/admin/v1/tenants/filed", json={"issuer": "https://filed.example"}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    source = b"def pre_revoke(context, plan):\n    return None\n"
    headers = {**OPERATOR, "Content-Type": "text/x-python"}
    r = await http.put("/admin/v1/tenants/filed/plugins/mine", content=source, headers=headers)
    assert r.status_code == 201, r.text
    enable = '[[plugins.enabled]]\nname = "mine"\n'
    (tmp_path / "other.toml").write_text(
        f'tenant_id = "other"\nissuer = "https://other.example"\n{enable}'
    )
    with pytest.raises(ConfigError) as raised:
        await load_tenant_files(services, tmp_path)
    assert raised.value.key == "plugins.enabled[0].name"
    (tmp_path / "other.toml").unlink()
    (tmp_path / "filed.toml").write_text(
        f'tenant_id = "filed"\nissuer = "https://filed.example"\n{enable}'
    )
    assert await load_tenant_files(services, tmp_path) == ["filed"]
    tenant = await services.store.get_tenant("filed")
    assert tenant is not None
    assert [p["name"] for p in tenant.settings["plugins"]["enabled"]] == ["mine"]
