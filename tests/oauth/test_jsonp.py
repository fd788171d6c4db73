"""JSONP at the revocation endpoint (``jsonp.enabled``, RFC 7009 section 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from app.config import ServiceConfig
from app.errors import StoreUnavailable
from app.services import Services
from tests.support.world import World, basic, make_world

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
CALL_RE = re.compile(r"^([A-Za-z_$][A-Za-z0-9_$.]*)\((.*)\);$", re.DOTALL)


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    """With the shipped plugins, for ``response_attributes``."""
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, plugins_dir=PLUGINS_DIR)


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http, jsonp={"enabled": True})
    await world.tenant.register(
        {"token": "at-1", "type": "access_token", "client_id": "app"},
        {"token": "at-2", "type": "access_token", "client_id": "app"},
    )
    return world


def script(r: httpx.Response, name: str) -> Any:
    """The argument of the call ``name(…);`` that ``r`` is (None for ``name();``)."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/javascript"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert int(r.headers["content-length"]) == len(r.content)
    match = CALL_RE.match(r.text)
    assert match is not None, r.text
    assert match[1] == name
    return json.loads(match[2]) if match[2] else None


async def test_success_is_an_empty_call(world: World) -> None:
    r = await world.tenant.revoke("at-1", auth=world.app, callback="app.revoked")
    assert r.text == "app.revoked();"
    assert script(r, "app.revoked") is None
    assert not await world.active("at-1")
    r = await world.tenant.revoke("never-issued", auth=world.app, callback="$_")
    assert r.text == "$_();"


async def test_an_oauth_error_is_the_calls_argument_with_status_200(world: World) -> None:
    r = await world.tenant.revoke("at-1", auth=basic("app", "wrong"), callback="cb")
    body = script(r, "cb")
    assert body["error"] == "invalid_client"
    assert body["client_auth_id"]
    assert r.headers["www-authenticate"].startswith("Basic")  # kept, as a hint
    assert await world.active("at-1")

    r = await world.tenant.revoke(None, auth=world.app, callback="cb")
    assert script(r, "cb")["error"] == "invalid_request"
    r = await world.tenant.revoke("at-1", auth=world.app, callback="cb", token_type_hint="all")
    assert script(r, "cb") == {"error": "unsupported_token_type"}
    r = await world.tenant.revoke("at-1", callback="cb", client_id="nobody")
    assert script(r, "cb")["error"] == "invalid_client"


async def test_a_store_outage_is_a_call_too(
    world: World, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*args: Any, **kwargs: Any) -> NoReturn:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(services.store, "find_credential", down)
    r = await world.tenant.revoke("at-1", auth=world.app, callback="cb")
    assert script(r, "cb") == {"error": "temporarily_unavailable"}
    assert r.headers["retry-after"]


@pytest.mark.parametrize(
    "name",
    [
        "alert(1)//",
        "a b",
        "<script>",
        "a" * 65,
        "",
        "caf\u00e9",
        "\u0430lert",  # a Cyrillic a
        "1abc",
        "cb\n",
        "cb;alert(1)",
        "a-b",
        "a[0]",
    ],
)
async def test_a_hostile_callback_name_is_400_json_and_revokes_nothing(
    world: World, name: str
) -> None:
    r = await world.tenant.revoke("at-1", auth=world.app, callback=name)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "invalid_request"
    assert name not in r.text or not name
    assert await world.active("at-1")


async def test_the_longest_name_is_64_characters(world: World) -> None:
    name = "a" * 64
    assert script(await world.tenant.revoke("at-1", auth=world.app, callback=name), name) is None


async def test_a_bad_name_is_refused_before_client_authentication(world: World) -> None:
    r = await world.tenant.revoke("at-1", auth=basic("app", "wrong"), callback="a b")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


async def test_a_tenant_without_jsonp_ignores_callback(http: httpx.AsyncClient) -> None:
    world = await make_world(http, "plain")
    await world.tenant.register({"token": "at-1", "type": "access_token", "client_id": "app"})
    for name in ("cb", "alert(1)//"):
        r = await world.tenant.revoke("never-issued", auth=world.app, callback=name)
        assert (r.status_code, r.content) == (200, b"")
        assert "javascript" not in r.headers.get("content-type", "")
    r = await world.tenant.revoke("at-1", auth=basic("app", "wrong"), callback="cb")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = await world.tenant.revoke("at-1", auth=world.app, callback="alert(1)//")
    assert r.status_code == 200
    assert not await world.active("at-1")


async def test_only_a_post_form_parameter_counts(http: httpx.AsyncClient, world: World) -> None:
    r = await http.get("/token/revoke?callback=cb&token=at-1", headers=world.tenant.headers)
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/json"
    r = await http.post(
        "/token/revoke?callback=cb",
        data={"token": "at-1"},
        headers={**world.tenant.headers, **world.app},
    )
    assert (r.status_code, r.content) == (200, b"")


async def test_a_repeated_callback_is_400_json(http: httpx.AsyncClient, world: World) -> None:
    r = await http.post(
        "/token/revoke",
        content=b"token=at-1&callback=a&callback=b",
        headers={
            **world.tenant.headers,
            **world.app,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert await world.active("at-1")


async def test_introspection_has_no_jsonp(http: httpx.AsyncClient, world: World) -> None:
    r = await http.post(
        "/token/introspect",
        data={"token": "at-1", "callback": "cb"},
        headers={**world.tenant.headers, **world.rs},
    )
    assert r.status_code == 200
    assert r.json()["active"] is True


async def test_a_response_mapping_body_goes_inside_the_call(world: World) -> None:
    await world.tenant.patch(
        {
            "plugins": {
                "enabled": [
                    {
                        "name": "response_attributes",
                        "config": {
                            "attributes": {"policy": "v2", "note": "a\u2028b \u00e9"},
                            "headers": {"X-Revocation-Policy": "v2"},
                            "endpoints": ["revocation"],
                        },
                    }
                ]
            }
        }
    )
    r = await world.tenant.revoke("at-1", auth=world.app, callback="cb")
    assert script(r, "cb") == {"policy": "v2", "note": "a\u2028b \u00e9"}
    assert r.text.isascii()  # U+2028 escaped: it ends a line in older engines
    assert r.headers["x-revocation-policy"] == "v2"
    r = await world.tenant.revoke("at-2", auth=basic("app", "wrong"), callback="cb")
    body = script(r, "cb")
    assert (body["error"], body["policy"]) == ("invalid_client", "v2")
