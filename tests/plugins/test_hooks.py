"""The four hooks through the HTTP interface, with several operator plugins at once.

The probes (``tests/plugins/probes``) record each call and answer what the tenant's
config for them says; ``probe_b`` is ``async``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import ServiceConfig
from tests.plugins.probes import _probe
from tests.support.world import OPERATOR, SECRET, World, basic, make_tenant, make_world

PROBES = Path(__file__).parent / "probes"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, plugins_dir=PROBES)


@pytest.fixture(autouse=True)
def calls() -> Iterator[list[dict[str, Any]]]:
    _probe.CALLS.clear()
    yield _probe.CALLS
    _probe.CALLS.clear()


def enabled(*entries: tuple[str, dict[str, Any]], **failure_mode: str) -> dict[str, Any]:
    """Probes for the revocation endpoint only (unless told), so that the introspection
    a test uses to look at the outcome does not run them."""
    plugins: dict[str, Any] = {
        "enabled": [
            {"name": n, "config": {"endpoints": ["revocation", "admin.withdraw"], **c}}
            for n, c in entries
        ]
    }
    if failure_mode:
        plugins["failure_mode"] = failure_mode
    return {"plugins": plugins}


async def grant_world(http: httpx.AsyncClient, **settings: Any) -> World:
    world = await make_world(http, **settings)
    await world.tenant.register(
        {
            "token": "rt-1",
            "type": "refresh_token",
            "client_id": "app",
            "grant_id": "g1",
            "sub": "alice",
            "scope": "openid",
        },
        {
            "token": "at-1",
            "type": "access_token",
            "client_id": "app",
            "grant_id": "g1",
            "sub": "alice",
        },
        {
            "token": "at-2",
            "type": "access_token",
            "client_id": "app",
            "grant_id": "g2",
            "sub": "alice",
        },
    )
    return world


def event_types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- pre_revoke ------------------------------------------------------------------------


async def test_a_veto_revokes_nothing_still_200_and_stops_the_chain(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(("probe_a", {"pre_revoke": {"veto": "frozen account"}}), ("probe_b", {}))
    )
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 200
    assert r.content == b""
    assert await world.active("rt-1")
    assert await world.active("at-1")
    assert [c["plugin"] for c in _probe.calls("pre_revoke")] == ["probe_a"]
    assert _probe.calls("post_revoke") == []
    events = await world.tenant.events()
    assert event_types(events) == ["plugin_veto"]
    assert events[0]["cause"] == "probe_a@1"
    assert events[0]["client_id"] == "app"
    assert events[0]["grant_id"] == "g1"


async def test_plugins_run_in_the_tenants_order(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_c", {}), ("probe_a", {}), ("probe_b", {})))
    assert (await world.tenant.revoke("at-2", auth=world.app)).status_code == 200
    for hook in ("pre_auth", "pre_revoke", "post_revoke"):
        assert [c["plugin"] for c in _probe.calls(hook)] == ["probe_c", "probe_a", "probe_b"], hook


async def test_narrowing_to_the_token_policy_leaves_the_grant(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_b", {"pre_revoke": {"cascade": "token"}})))
    assert (await world.tenant.revoke("rt-1", auth=world.app)).status_code == 200
    assert not await world.active("rt-1")
    assert await world.active("at-1")
    events = await world.tenant.events()
    assert event_types(events) == ["revoked", "plugin_narrowed"]
    assert events[1]["cause"] == "probe_b@2"
    assert events[0]["count"] == 1


async def test_widening_takes_another_grant_too(http: httpx.AsyncClient) -> None:
    world = await grant_world(http, revocation={"cascade": "token"})
    await world.tenant.patch(enabled(("probe_a", {"pre_revoke": {"widen": {"grant_ids": ["g2"]}}})))
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    assert not await world.active("at-1")
    assert not await world.active("at-2")
    assert await world.active("rt-1")
    events = await world.tenant.events()
    assert event_types(events) == ["revoked", "plugin_widened"]
    assert events[0]["count"] == 2


async def test_later_plugins_see_the_plan_as_earlier_ones_left_it(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(
            ("probe_a", {"pre_revoke": {"cascade": "token"}}),
            (
                "probe_c",
                {"pre_revoke": {"widen": {"subjects": [{"client_id": "app", "sub": "alice"}]}}},
            ),
        )
    )
    assert (await world.tenant.revoke("at-1", auth=world.app)).status_code == 200
    seen = _probe.calls("pre_revoke")
    assert seen[0]["args"]["plan"]["selectors"][1]["by"] == "grant"
    assert [s["by"] for s in seen[1]["args"]["plan"]["selectors"]] == ["token"]
    for token in ("rt-1", "at-1", "at-2"):
        assert not await world.active(token)
    assert event_types(await world.tenant.events()) == [
        "revoked",
        "plugin_narrowed",
        "plugin_widened",
    ]


async def test_a_cascade_decision_without_a_credential_is_a_failure(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http, revocation={"allow_revoke_all": True})
    await world.tenant.patch(enabled(("probe_a", {"pre_revoke": {"cascade": "token"}})))
    r = await world.tenant.revoke("whatever", auth=world.app, token_type_hint="all")
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable"}
    assert await world.active("rt-1")
    assert _probe.calls("pre_revoke")[0]["args"]["plan"]["cause"] == "all"
    assert event_types(await world.tenant.events()) == ["plugin_failed"]


# --- failure modes ---------------------------------------------------------------------


async def test_a_failing_pre_revoke_fails_closed_by_default(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_a", {"raise": ["pre_revoke"]})))
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert await world.active("rt-1")
    events = await world.tenant.events()
    assert event_types(events) == ["plugin_failed"]
    assert events[0]["cause"] == "probe_a@1"


async def test_fail_open_goes_on_with_the_core_behaviour(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(
            ("probe_a", {"raise": ["pre_auth", "pre_revoke"]}), ("probe_c", {}), pre="fail_open"
        )
    )
    assert (await world.tenant.revoke("rt-1", auth=world.app)).status_code == 200
    assert not await world.active("at-1")
    assert [c["plugin"] for c in _probe.calls("pre_revoke")] == ["probe_a", "probe_c"]
    assert event_types(await world.tenant.events()) == ["plugin_failed", "plugin_failed", "revoked"]


@pytest.mark.parametrize(("mode", "later_called"), [("fail_open", True), ("fail_closed", False)])
async def test_post_failures_never_change_the_status(
    http: httpx.AsyncClient, mode: str, later_called: bool
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(("probe_a", {"raise": ["post_revoke"]}), ("probe_c", {}), post=mode)
    )
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 200
    assert not await world.active("rt-1")
    called = [c["plugin"] for c in _probe.calls("post_revoke")]
    assert called == (["probe_a", "probe_c"] if later_called else ["probe_a"])


# --- post_revoke -----------------------------------------------------------------------


async def test_post_revoke_sees_the_committed_outcome(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_b", {})))
    await world.tenant.revoke("rt-1", auth=world.app)
    await world.tenant.revoke("rt-1", auth=world.app)  # already revoked: nothing to revoke
    await world.tenant.revoke("never-registered", auth=world.app)
    outcomes = [c["args"]["outcome"] for c in _probe.calls("post_revoke")]
    first_event = (await world.tenant.events())[0]["id"]
    assert outcomes == [{"applied": True, "count": 2, "cause": "grant", "event_ids": [first_event]}]


# --- what plugins are told ---------------------------------------------------------------


async def test_the_context_names_client_and_credential_never_a_secret(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_a", {"endpoints": ["revocation"]})))
    await world.tenant.revoke("rt-1", auth=world.app, token_type_hint="refresh_token")
    await world.tenant.revoke("at-2", client_id="app", client_secret=SECRET)
    text = json.dumps(_probe.CALLS)
    for secret in ("rt-1", "at-2", SECRET, basic("app", SECRET)["Authorization"]):
        assert secret not in text
    auth, revoke = _probe.calls("pre_auth")[0]["context"], _probe.calls("pre_revoke")[0]["context"]
    assert auth["client"] is None
    assert auth["presented_auth"] == "client_secret_basic"
    assert auth["params"] == {"token_type_hint": "refresh_token"}
    assert auth["config"] == {"endpoints": ["revocation"]}
    assert auth["tenant_id"] == "acme"
    assert auth["endpoint"] == "revocation"
    assert revoke["client"] == {
        "client_id": "app",
        "type": "confidential",
        "auth_method": "client_secret_basic",
        "scope": [],
    }
    assert revoke["credential"]["grant_id"] == "g1"
    assert revoke["credential"]["type"] == "refresh_token"
    assert revoke["credential"]["scope"] == "openid"
    assert _probe.calls("pre_auth")[1]["context"]["presented_auth"] == "client_secret_post"


async def test_a_plugin_runs_only_for_the_tenants_that_enable_it(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    other = await make_world(http, "beta")
    await other.tenant.register({"token": "b-1", "type": "access_token", "client_id": "app"})
    await world.tenant.patch(enabled(("probe_a", {"pre_revoke": {"veto": True}})))
    assert (await other.tenant.revoke("b-1", auth=other.app)).status_code == 200
    assert not await other.active("b-1")
    assert _probe.CALLS == []
    assert event_types(await other.tenant.events()) == ["revoked"]


# --- pre_auth --------------------------------------------------------------------------


async def test_pre_auth_rejects_with_its_error(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    reject = {"reject": {"status": 403, "error": "access_denied", "error_description": "closed"}}
    await world.tenant.patch(enabled(("probe_a", {"pre_auth": reject}), ("probe_c", {})))
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 403
    assert r.json() == {"error": "access_denied", "error_description": "closed"}
    assert await world.active("rt-1")
    assert [c["plugin"] for c in _probe.calls("pre_auth")] == ["probe_a"]
    events = await world.tenant.events()
    assert event_types(events) == ["plugin_rejected"]


async def test_pre_auth_may_authenticate_the_client_itself(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(("probe_b", {"pre_auth": {"authenticate": {"client_id": "app"}}}))
    )
    r = await http.post("/token/revoke", data={"token": "rt-1"}, headers=world.tenant.headers)
    assert r.status_code == 200
    assert not await world.active("rt-1")
    ctx = _probe.calls("pre_revoke")[0]["context"]
    assert ctx["client"]["auth_method"] == "plugin:probe_b"


async def test_pre_auth_cannot_authenticate_an_unknown_client(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(("probe_b", {"pre_auth": {"authenticate": {"client_id": "ghost"}}}))
    )
    r = await http.post("/token/revoke", data={"token": "rt-1"}, headers=world.tenant.headers)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert await world.active("rt-1")


@pytest.mark.parametrize(
    "decision",
    [
        {"reject": {"status": 503, "error": "x"}},
        {"reject": {"status": 400, "error": "Not An Error Code"}},
        {"authenticate": {}},
        {"approve": True},
        ["a list"],
    ],
)
async def test_an_invalid_pre_auth_decision_is_a_failure(
    http: httpx.AsyncClient, decision: Any
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(enabled(("probe_a", {"pre_auth": decision})))
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 503
    assert await world.active("rt-1")


# --- response_mapping ------------------------------------------------------------------


async def test_response_mapping_adds_attributes_and_headers(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(
            (
                "probe_a",
                {
                    "response_mapping": {
                        "attributes": {"status": "done"},
                        "headers": {"X-Tenant-Rule": "a"},
                    }
                },
            ),
            ("probe_b", {"response_mapping": {"attributes": {"status": "ignored", "by": "b"}}}),
        )
    )
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 200
    assert r.json() == {"status": "done", "by": "b"}
    assert r.headers["x-tenant-rule"] == "a"
    assert r.headers["cache-control"] == "no-store"
    second = _probe.calls("response_mapping")[1]["args"]["response"]
    assert second == {"status": 200, "body": {"status": "done"}}


async def test_response_mapping_runs_on_errors_without_replacing_them(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(("probe_a", {"response_mapping": {"attributes": {"error": "nope", "hint": "h"}}}))
    )
    r = await world.tenant.revoke("rt-1", auth=basic("app", "wrong"))
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "invalid_client"
    assert body["hint"] == "h"
    assert body["client_auth_id"]
    assert r.headers["www-authenticate"].startswith("Basic")


async def test_a_reserved_header_is_a_failure_that_fails_open_after_the_fact(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    await world.tenant.patch(
        enabled(
            ("probe_a", {"response_mapping": {"headers": {"Set-Cookie": "a=b"}}}),
            ("probe_c", {"response_mapping": {"headers": {"X-Ok": "1"}}}),
        )
    )
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 200
    assert "set-cookie" not in r.headers
    assert r.headers["x-ok"] == "1"
    assert not await world.active("rt-1")


# --- introspection and the admin API ---------------------------------------------------


async def test_introspection_runs_pre_auth_and_response_mapping(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    mapping = {"attributes": {"active": False, "x": 1}}
    await world.tenant.patch(
        enabled(("probe_a", {"response_mapping": mapping, "endpoints": ["introspection"]}))
    )
    body = await world.tenant.introspect("at-1", world.rs)
    assert body["active"] is True
    assert body["x"] == 1
    assert [c["hook"] for c in _probe.CALLS] == ["pre_auth", "response_mapping"]
    assert _probe.CALLS[0]["context"]["endpoint"] == "introspection"


async def test_an_admin_withdrawal_runs_pre_and_post_revoke(http: httpx.AsyncClient) -> None:
    world = await grant_world(http)
    path = "/admin/v1/tenants/acme/subjects/alice/clients/app"
    await world.tenant.patch(enabled(("probe_a", {"pre_revoke": {"veto": "legal hold"}})))
    r = await http.delete(path, headers=OPERATOR)
    assert r.json() == {"revoked": 0}
    assert await world.active("at-1")
    assert _probe.calls("pre_revoke")[0]["context"]["endpoint"] == "admin.withdraw"
    assert _probe.calls("pre_revoke")[0]["args"]["plan"]["cause"] == "withdrawn"

    await world.tenant.patch(enabled(("probe_a", {})))
    r = await http.delete(path, headers=OPERATOR)
    assert r.json() == {"revoked": 3}
    assert _probe.calls("post_revoke")[0]["args"]["outcome"]["count"] == 3
    assert event_types(await world.tenant.events()) == ["plugin_veto", "revoked"]


# --- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugins", "field"),
    [
        ({"enabled": ["probe_a"]}, "plugins.enabled[0]"),
        ({"enabled": [{"name": "nowhere"}]}, "plugins.enabled[0].name"),
        ({"enabled": [{"name": "probe_a"}, {"name": "probe_a"}]}, "plugins.enabled[1].name"),
        ({"enabled": [{"name": "probe_a", "config": {"bad": True}}]}, "plugins.enabled[0].config"),
        ({"enabled": [{"name": "probe_a", "config": []}]}, "plugins.enabled[0].config"),
        ({"failure_mode": {"pre": "ignore"}}, "plugins.failure_mode.pre"),
    ],
)
async def test_plugin_settings_are_checked_when_set(
    http: httpx.AsyncClient, plugins: dict[str, Any], field: str
) -> None:
    await make_tenant(http, "acme")
    issuer = {"issuer": "https://auth.example.com/t/acme"}
    for method, body in (("PATCH", {"plugins": plugins}), ("PUT", {"plugins": plugins, **issuer})):
        r = await http.request(method, "/admin/v1/tenants/acme", json=body, headers=OPERATOR)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field
    r = await http.get("/admin/v1/tenants/acme", headers=OPERATOR)
    assert r.json()["settings"]["plugins"]["enabled"] == []


def test_every_hook_is_documented() -> None:
    from app.plugins import hookspecs

    doc = (Path(__file__).parents[2] / "docs" / "PLUGINS.md").read_text()
    specs = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "revocation_service_spec")]
    assert len(specs) == 6
    for name in specs:
        assert f"`{name}`" in doc, f"{name} is not in docs/PLUGINS.md"


async def test_a_401_rejection_is_a_failed_client_authentication(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    reject = {"reject": {"status": 401, "error": "invalid_client", "error_description": "blocked"}}
    await world.tenant.patch(enabled(("probe_a", {"pre_auth": reject})))
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.json()["client_auth_id"]
    assert r.headers["www-authenticate"].startswith("Basic realm=")


async def test_a_header_value_that_is_not_ascii_is_a_failure_not_a_500(
    http: httpx.AsyncClient,
) -> None:
    world = await grant_world(http)
    mapping = {"headers": {"X-Price": "5 €"}, "attributes": {"a": 1}}
    await world.tenant.patch(enabled(("probe_a", {"response_mapping": mapping})))
    r = await world.tenant.revoke("rt-1", auth=world.app)
    assert r.status_code == 200
    assert r.content == b""
    assert not await world.active("rt-1")
    assert event_types(await world.tenant.events()) == ["revoked", "plugin_failed"]
