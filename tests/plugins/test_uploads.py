"""Tenant plugins: upload, versions, rollback, removal, dry runs, and their hooks running
in the sandbox on real requests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.world import OPERATOR, World, make_world

VETO = b"""
def pre_revoke(context, plan):
    print("asked by", context["client"]["client_id"])
    if context["credential"]["grant_id"] == "g1":
        return {"veto": "grant g1 is on legal hold"}
"""
ALLOW = b"""
def pre_revoke(context, plan):
    return None
"""
MAPPING = b"""
def response_mapping(context, response):
    return {"attributes": {"tenant": context["tenant_id"]}, "headers": {"X-Plugin": "v"}}
"""
PYTHON = {"Content-Type": "text/x-python"}


def plugin_path(tenant_id: str, name: str, rest: str = "") -> str:
    return f"/admin/v1/tenants/{tenant_id}/plugins/{name}{rest}"


async def upload(
    http: httpx.AsyncClient, source: bytes, name: str = "hold", tenant_id: str = "acme"
) -> dict[str, Any]:
    r = await http.put(plugin_path(tenant_id, name), content=source, headers={**OPERATOR, **PYTHON})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def world_with_tokens(http: httpx.AsyncClient, tenant_id: str = "acme") -> World:
    world = await make_world(http, tenant_id)
    await world.tenant.register(
        {"token": "at-1", "type": "access_token", "client_id": "app", "grant_id": "g1"},
        {"token": "at-2", "type": "access_token", "client_id": "app", "grant_id": "g2"},
    )
    return world


async def enable(world: World, *names: str, **failure_mode: str) -> None:
    plugins: dict[str, Any] = {"enabled": [{"name": n} for n in names]}
    if failure_mode:
        plugins["failure_mode"] = failure_mode
    await world.tenant.patch({"plugins": plugins})


async def test_every_upload_is_a_new_current_version(http: httpx.AsyncClient) -> None:
    await make_world(http)
    first = await upload(http, VETO)
    assert first["version"] == 1
    assert first["hooks"] == ["pre_revoke"]
    assert len(first["sha256"]) == 64
    second = await upload(http, ALLOW)
    assert second["version"] == 2
    r = await http.get(plugin_path("acme", "hold"), headers=OPERATOR)
    assert r.json()["source"] == ALLOW.decode()
    assert r.json()["status"] == "uploaded"
    assert r.json()["uploaded_by"] == "operator"
    r = await http.get(plugin_path("acme", "hold", "/versions"), headers=OPERATOR)
    assert [(v["version"], v["current"]) for v in r.json()["versions"]] == [(1, False), (2, True)]
    r = await http.get(plugin_path("acme", "hold", "/versions/1"), headers=OPERATOR)
    assert r.json()["source"] == VETO.decode()


async def test_an_upload_takes_effect_on_the_next_request_and_rolls_back(
    http: httpx.AsyncClient,
) -> None:
    world = await world_with_tokens(http)
    await upload(http, VETO)
    await enable(world, "hold")
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    assert await world.active("at-1")
    events = await world.tenant.events()
    assert [(e["type"], e["cause"]) for e in events] == [("plugin_veto", "hold@1")]

    await upload(http, ALLOW)
    r = await http.post(plugin_path("acme", "hold", "/versions/1/activate"), headers=OPERATOR)
    assert r.status_code == 200
    assert r.json()["version"] == 1
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    assert await world.active("at-1")

    r = await http.post(plugin_path("acme", "hold", "/versions/2/activate"), headers=OPERATOR)
    assert r.json()["current"] is True
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    assert not await world.active("at-1")


async def test_sandboxed_hooks_change_responses(http: httpx.AsyncClient) -> None:
    world = await world_with_tokens(http)
    await upload(http, MAPPING, name="mapper")
    await enable(world, "mapper")
    r = await world.tenant.revoke("at-2", auth=world.app)
    assert r.json() == {"tenant": "acme"}
    assert r.headers["x-plugin"] == "v"


async def test_an_enabled_plugin_cannot_be_removed(http: httpx.AsyncClient) -> None:
    world = await world_with_tokens(http)
    await upload(http, VETO)
    await enable(world, "hold")
    r = await http.delete(plugin_path("acme", "hold"), headers=OPERATOR)
    assert r.status_code == 409
    await enable(world)
    r = await http.delete(plugin_path("acme", "hold"), headers=OPERATOR)
    assert r.status_code == 204
    r = await http.get(plugin_path("acme", "hold"), headers=OPERATOR)
    assert r.status_code == 404
    r = await http.delete(plugin_path("acme", "hold"), headers=OPERATOR)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (b"def pre_revoke(context, plan):\n    return (\n", "SyntaxError at line"),
        (b"x = 1\n", "defines none of the hooks"),
        (b"def pre_revok(context, plan):\n    pass\n", "defines none of the hooks"),
        (
            b"async def pre_revoke(context, plan):\n    pass\n",
            "line 1: pre_revoke must be a plain def",
        ),
        (b"def pre_auth(context):\n    return 1\n\xff\n", "is not UTF-8"),
    ],
)
async def test_bad_uploads_are_refused_and_say_where(
    http: httpx.AsyncClient, source: bytes, says: str
) -> None:
    await make_world(http)
    r = await http.put(plugin_path("acme", "bad"), content=source, headers={**OPERATOR, **PYTHON})
    assert r.status_code == 400
    assert r.json()["field"] == "source"
    assert says in r.json()["error_description"]
    r = await http.get(plugin_path("acme", "bad", "/versions"), headers=OPERATOR)
    assert r.status_code == 404


async def test_upload_needs_python_a_good_name_and_a_free_one(http: httpx.AsyncClient) -> None:
    await make_world(http)
    r = await http.put(plugin_path("acme", "x"), content=ALLOW, headers=OPERATOR)
    assert r.status_code == 400
    r = await http.put(
        plugin_path("acme", "Bad-Name"), content=ALLOW, headers={**OPERATOR, **PYTHON}
    )
    assert r.json()["field"] == "name"
    r = await http.put(
        plugin_path("acme", "revoke_veto"), content=ALLOW, headers={**OPERATOR, **PYTHON}
    )
    assert r.status_code == 409
    big = b"def pre_auth(context):\n    pass\n" + b"#" * (256 * 1024)
    r = await http.put(plugin_path("acme", "big"), content=big, headers={**OPERATOR, **PYTHON})
    assert r.status_code == 413


async def test_tenant_admins_manage_only_their_own_plugins(http: httpx.AsyncClient) -> None:
    await make_world(http)
    await make_world(http, "beta")
    r = await http.post("/admin/v1/tenants/acme/admin-keys", headers=OPERATOR)
    mine = {"Authorization": f"Bearer {r.json()['key']}"}
    r = await http.put(plugin_path("acme", "hold"), content=VETO, headers={**mine, **PYTHON})
    assert r.status_code == 201
    assert r.json()["uploaded_by"].startswith("key:")
    r = await http.put(plugin_path("beta", "hold"), content=VETO, headers={**mine, **PYTHON})
    assert r.status_code == 403
    r = await http.get(plugin_path("beta", "hold"), headers=OPERATOR)
    assert r.status_code == 404
    r = await http.get("/admin/v1/tenants/beta/plugins", headers=OPERATOR)
    assert r.json() == {"plugins": []}
    r = await http.get("/admin/v1/tenants/acme/plugins", headers=mine)
    assert [p["name"] for p in r.json()["plugins"]] == ["hold"]


async def test_another_tenant_cannot_enable_a_plugin_it_does_not_have(
    http: httpx.AsyncClient,
) -> None:
    await make_world(http)
    beta = await make_world(http, "beta")
    await upload(http, VETO)
    r = await http.patch(
        "/admin/v1/tenants/beta",
        json={"plugins": {"enabled": [{"name": "hold"}]}},
        headers=OPERATOR,
    )
    assert r.status_code == 400
    assert r.json()["field"] == "plugins.enabled[0].name"
    assert beta.tenant.tenant_id == "beta"


async def test_a_dry_run_tells_decision_duration_and_output(http: httpx.AsyncClient) -> None:
    await make_world(http)
    await upload(http, VETO)
    sample = {
        "hook": "pre_revoke",
        "context": {"client": {"client_id": "app"}, "credential": {"grant_id": "g1"}},
    }
    r = await http.post(plugin_path("acme", "hold", "/test"), json=sample, headers=OPERATOR)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == {"veto": "grant g1 is on legal hold"}
    assert body["output"] == "asked by app\n"
    assert body["duration_ms"] >= 0
    assert "failed" not in body
    assert await http_events(http) == []

    r = await http.post(
        plugin_path("acme", "hold", "/test"), json={"hook": "pre_auth"}, headers=OPERATOR
    )
    assert r.status_code == 400
    assert r.json()["field"] == "hook"


async def test_a_dry_run_reports_a_failure(http: httpx.AsyncClient) -> None:
    await make_world(http)
    await upload(http, b"def pre_revoke(context, plan):\n    return {'veto': 1, 'x': 2}\n")
    r = await http.post(
        plugin_path("acme", "hold", "/test"), json={"hook": "pre_revoke"}, headers=OPERATOR
    )
    assert r.json()["failed"]["kind"] == "invalid_decision"
    await upload(http, b"def pre_revoke(context, plan):\n    raise KeyError('boom')\n")
    r = await http.post(
        plugin_path("acme", "hold", "/test"), json={"hook": "pre_revoke"}, headers=OPERATOR
    )
    assert r.json()["failed"]["kind"] == "exception"
    assert "KeyError" in r.json()["failed"]["detail"]


async def http_events(http: httpx.AsyncClient) -> list[Any]:
    r = await http.get("/admin/v1/tenants/acme/events", headers=OPERATOR)
    events: list[Any] = r.json()["events"]
    return events


async def test_deleting_a_tenant_removes_its_plugins(http: httpx.AsyncClient) -> None:
    await make_world(http)
    await upload(http, VETO)
    assert (await http.delete("/admin/v1/tenants/acme", headers=OPERATOR)).status_code == 204
    await make_world(http)
    r = await http.get("/admin/v1/tenants/acme/plugins", headers=OPERATOR)
    assert r.json() == {"plugins": []}
