"""Receivers of Security Event Tokens through the admin API and the CLI (contract
section 5), on both stores: registration, replacement, state, validation, host rules,
tenant admin keys, and the sealed authorization (master key rotation included)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.admin import key_rotation
from app.cli import main
from app.keys import MASTER_KEY_ENV, MASTER_KEYS_FILE_ENV
from app.propagation.event_types import CAEP_SESSION_REVOKED, URI_OF
from app.services import Services
from tests.support.world import OPERATOR, SECRET, World, make_tenant, make_world

RECEIVERS = "/admin/v1/tenants/acme/receivers"
RS1 = f"{RECEIVERS}/rs1"
URL = "https://rs.example.com/events"
AUTHORIZATION = "Bearer push-secret-0123456789"
PUSH: dict[str, Any] = {"url": URL, "authorization": AUTHORIZATION, "events": ["revoked"]}


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http)
    await world.tenant.register(
        *({"token": f"tok{i}", "type": "access_token", "client_id": "app"} for i in range(4))
    )
    return world


async def revoke(world: World, token: str) -> None:
    assert (await world.tenant.revoke(token, auth=world.app)).status_code == 200


async def put(
    http: httpx.AsyncClient, body: Any, url: str = RS1, headers: dict[str, str] = OPERATOR
) -> httpx.Response:
    return await http.put(url, json=body, headers=headers)


async def get(http: httpx.AsyncClient, url: str = RS1) -> dict[str, Any]:
    r = await http.get(url, headers=OPERATOR)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def stored_receiver(services: Services, receiver_id: str = "rs1") -> Any:
    found = await services.store.get_receiver("acme", receiver_id)
    assert found is not None
    return found


# --- create, replace, read, list, delete -------------------------------------------------


async def test_a_push_receiver_is_created_read_replaced_listed_and_deleted(
    http: httpx.AsyncClient, world: World
) -> None:
    await revoke(world, "tok0")  # before: not in the receiver's queue

    created = await put(http, {**PUSH, "audience": "https://rs.example.com"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert AUTHORIZATION not in created.text
    assert {k: body[k] for k in ("receiver_id", "delivery", "url", "events", "audience")} == {
        "receiver_id": "rs1",
        "delivery": "push",
        "url": URL,
        "events": [URI_OF["revoked"]],
        "audience": "https://rs.example.com",
    }
    assert body["authorization_set"] is True
    assert "client_id" not in body and "log" not in body
    latest = (await world.tenant.events())[-1]["id"]
    assert body["state"] == {
        "status": "active",
        "cursor": latest,
        "paused_reason": None,
        "failing_since": None,
        "attempts": 0,
        "next_attempt_at": 0,
        "last_error": None,
        "delivered": 0,
    }

    await revoke(world, "tok1")
    read = await get(http)
    assert read["log"] == []
    assert {k: read[k] for k in body if k != "state"} == {k: body[k] for k in body if k != "state"}
    assert read["state"] == {**body["state"], "lag": 1}

    replaced = await put(http, {"url": URL, "events": ["revoked", CAEP_SESSION_REVOKED]})
    assert replaced.status_code == 200, replaced.text
    again = replaced.json()
    assert again["created_at"] == body["created_at"]
    assert again["events"] == [URI_OF["revoked"], CAEP_SESSION_REVOKED]
    assert "audience" not in again
    assert again["state"]["cursor"] == latest  # the receiver keeps its place

    second = await put(http, {"url": "https://rs2.example.com/"}, f"{RECEIVERS}/rs2")
    assert second.status_code == 201
    assert second.json()["events"] == [URI_OF["revoked"], CAEP_SESSION_REVOKED]  # default
    listed = await get(http, RECEIVERS)
    assert [r["receiver_id"] for r in listed["receivers"]] == ["rs1", "rs2"]
    assert all("log" not in r and "state" in r for r in listed["receivers"])

    assert (await http.delete(RS1, headers=OPERATOR)).status_code == 204
    assert (await http.get(RS1, headers=OPERATOR)).status_code == 404
    assert (await http.delete(RS1, headers=OPERATOR)).status_code == 404
    assert [r["receiver_id"] for r in (await get(http, RECEIVERS))["receivers"]] == ["rs2"]


async def test_a_poll_receiver_names_a_client_of_the_tenant(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.tenant.client("poller", secret=SECRET)

    created = await put(http, {"delivery": "poll", "client_id": "poller"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["delivery"], body["client_id"], body["authorization_set"]) == (
        "poll",
        "poller",
        False,
    )
    assert "url" not in body


async def test_start_after_sets_where_a_new_receiver_begins(
    http: httpx.AsyncClient, world: World
) -> None:
    await revoke(world, "tok0")
    await revoke(world, "tok1")
    latest = (await world.tenant.events())[-1]["id"]

    created = await put(http, {**PUSH, "start_after": "0"})
    assert created.json()["state"]["cursor"] == "0"
    assert (await get(http))["state"]["lag"] == 2
    # A replace keeps the receiver's place, whatever start_after says.
    replaced = await put(http, {**PUSH, "start_after": latest})
    assert replaced.json()["state"]["cursor"] == "0"

    beyond = str(int(latest) + 1)
    refused = await put(http, {**PUSH, "start_after": beyond}, f"{RECEIVERS}/rs2")
    assert refused.status_code == 400
    assert refused.json()["field"] == "start_after"


async def test_the_lag_counts_only_the_receivers_event_types(
    http: httpx.AsyncClient, world: World
) -> None:
    await put(http, {"url": URL, "events": ["session_ended"]})
    await revoke(world, "tok0")
    assert (await get(http))["state"]["lag"] == 0


# --- the authorization header --------------------------------------------------------------


async def test_the_authorization_is_sealed_and_never_shown(
    http: httpx.AsyncClient, services: Services, world: World
) -> None:
    await put(http, PUSH)
    tenant = await services.store.get_tenant("acme")
    assert tenant is not None
    sealed = (await stored_receiver(services)).authorization_sealed

    assert AUTHORIZATION.encode() not in sealed
    opened = services.keys.open_secret("acme", tenant.key_salt, sealed, "receiver:rs1")
    assert opened == AUTHORIZATION
    for url in (RS1, RECEIVERS):
        r = await http.get(url, headers=OPERATOR)
        assert AUTHORIZATION not in r.text and "push-secret" not in r.text


async def test_a_replace_keeps_the_authorization_only_for_the_same_url(
    http: httpx.AsyncClient, services: Services, world: World
) -> None:
    await put(http, PUSH)
    sealed = (await stored_receiver(services)).authorization_sealed

    kept = await put(http, {"url": URL, "events": ["revoked", "session_ended"]})
    assert kept.json()["authorization_set"] is True
    assert (await stored_receiver(services)).authorization_sealed == sealed

    elsewhere = await put(http, {"url": "https://elsewhere.example.com/"})
    assert elsewhere.json()["authorization_set"] is False

    await put(http, PUSH)
    removed = await put(http, {"url": URL, "authorization": ""})
    assert removed.json()["authorization_set"] is False
    assert (await stored_receiver(services)).authorization_sealed is None


async def test_a_master_key_rotation_seals_the_authorization_again(
    http: httpx.AsyncClient,
    services: Services,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (MASTER_KEY_ENV, MASTER_KEYS_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    await put(http, PUSH)
    before = await stored_receiver(services)
    tenant = await services.store.get_tenant("acme")
    assert tenant is not None
    salt = tenant.key_salt
    assert services.keys.seal_version("acme", salt, before.authorization_sealed, "receiver:rs1")

    rotation = await key_rotation.rotate(services, stage=False, now=int(time.time()))

    assert rotation["resealed"] >= 1 and rotation["unopened"] == 0
    after = await stored_receiver(services)
    assert after.authorization_sealed != before.authorization_sealed
    version = services.keys.seal_version("acme", salt, after.authorization_sealed, "receiver:rs1")
    assert version == services.keys.current.id == 2
    opened = services.keys.open_secret("acme", salt, after.authorization_sealed, "receiver:rs1")
    assert opened == AUTHORIZATION
    holds = (await key_rotation.census(services, int(time.time())))[1]
    assert holds.sealed_secrets == 0


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PUSH, "colour": "blue"}, "colour"),
        ({**PUSH, "delivery": "email"}, "delivery"),
        ({"events": ["revoked"]}, "url"),
        ({**PUSH, "url": 42}, "url"),
        ({**PUSH, "url": "ftp://rs.example.com/"}, "url"),
        ({**PUSH, "url": "https://user:pw@rs.example.com/"}, "url"),
        ({**PUSH, "url": "https://rs.example.com:99999/"}, "url"),
        ({**PUSH, "events": []}, "events"),
        ({**PUSH, "events": "revoked"}, "events"),
        ({**PUSH, "events": ["nope"]}, "events[0]"),
        ({**PUSH, "events": ["revoked", 3]}, "events[1]"),
        ({**PUSH, "authorization": "Bearer x\r\nX-Injected: 1"}, "authorization"),
        ({**PUSH, "client_id": "app"}, "client_id"),
        ({**PUSH, "receiver_id": "other"}, "receiver_id"),
        ({**PUSH, "start_after": 5}, "start_after"),
        ({**PUSH, "start_after": "-1"}, "start_after"),
        ({**PUSH, "audience": ""}, "audience"),
        ({"delivery": "poll"}, "client_id"),
        ({"delivery": "poll", "client_id": "nobody"}, "client_id"),
        ({"delivery": "poll", "client_id": "app", "url": URL}, "url"),
        ({"delivery": "poll", "client_id": "app", "authorization": "x"}, "authorization"),
        ([PUSH], ""),
    ],
)
async def test_bad_input_names_the_field_and_changes_nothing(
    http: httpx.AsyncClient, world: World, body: Any, field: str
) -> None:
    r = await put(http, body)

    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["field"] == field
    assert (await get(http, RECEIVERS))["receivers"] == []


@pytest.mark.parametrize("receiver_id", ["bad%20id", "a" * 65, "caf%C3%A9", "x%2Fy"])
async def test_a_receiver_id_is_a_short_plain_name(
    http: httpx.AsyncClient, world: World, receiver_id: str
) -> None:
    r = await put(http, PUSH, f"{RECEIVERS}/{receiver_id}")
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "receiver_id"


async def test_at_most_100_receivers_per_tenant(http: httpx.AsyncClient, world: World) -> None:
    for n in range(100):
        r = await put(http, {"url": URL}, f"{RECEIVERS}/r{n}")
        assert r.status_code == 201, r.text

    refused = await put(http, {"url": URL}, f"{RECEIVERS}/r100")

    assert refused.status_code == 409
    assert (await put(http, {"url": URL}, f"{RECEIVERS}/r7")).status_code == 200
    assert len((await get(http, RECEIVERS))["receivers"]) == 100


# --- host rules ---------------------------------------------------------------------------


PRIVATE_URLS = [
    "https://127.0.0.1/events",
    "https://10.1.2.3/events",
    "https://192.168.0.10:8443/events",
    "https://169.254.169.254/latest",
    "https://[::1]/events",
    "https://[::ffff:127.0.0.1]/events",
    "https://localhost/events",
    "https://rs.localhost/events",
    "http://rs.example.com/events",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_loopback_private_and_plain_http_urls_are_refused(
    http: httpx.AsyncClient, world: World, url: str
) -> None:
    r = await put(http, {"url": url})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "url"


async def test_the_operator_may_allow_private_addresses_and_http(
    http: httpx.AsyncClient, services: Services, world: World
) -> None:
    services.config = dataclasses.replace(services.config, fetch_allow_private=True)

    for n, url in enumerate(PRIVATE_URLS):
        r = await put(http, {"url": url}, f"{RECEIVERS}/r{n}")
        assert r.status_code == 201, (url, r.text)
    refused = await put(http, {"url": "ftp://127.0.0.1/"}, f"{RECEIVERS}/ftp")
    assert refused.status_code == 400


async def test_the_url_host_must_be_in_the_tenants_allowed_hosts(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.tenant.patch({"key_fetch": {"allowed_hosts": ["*.trusted.example"]}})

    refused = await put(http, {"url": "https://rs.other.example/"})
    accepted = await put(http, {"url": "https://rs.trusted.example/"})

    assert refused.status_code == 400 and refused.json()["field"] == "url"
    assert accepted.status_code == 201, accepted.text


# --- tenant admin keys ------------------------------------------------------------------------


async def test_a_tenant_admin_key_reaches_its_own_receivers_only(
    http: httpx.AsyncClient, world: World
) -> None:
    await make_tenant(http, "beta")
    beta_rs = "/admin/v1/tenants/beta/receivers/rs1"
    assert (await put(http, {"url": URL}, beta_rs)).status_code == 201
    key = (await http.post("/admin/v1/tenants/acme/admin-keys", headers=OPERATOR)).json()
    acme = {"Authorization": f"Bearer {key['key']}"}

    assert (await put(http, PUSH, RS1, acme)).status_code == 201
    assert (await http.get(RS1, headers=acme)).status_code == 200
    listed = await http.get(RECEIVERS, headers=acme)
    assert [r["receiver_id"] for r in listed.json()["receivers"]] == ["rs1"]

    for response in (
        await put(http, PUSH, beta_rs, acme),
        await http.get(beta_rs, headers=acme),
        await http.get("/admin/v1/tenants/beta/receivers", headers=acme),
        await http.delete(beta_rs, headers=acme),
    ):
        assert response.status_code == 403, response.text
    beta = await get(http, beta_rs)
    assert beta["url"] == URL and beta["authorization_set"] is False
    assert (await http.delete(RS1, headers=acme)).status_code == 204
    assert (await http.get(RS1)).status_code == 401


async def test_receivers_of_a_missing_tenant_are_404(http: httpx.AsyncClient) -> None:
    for r in (
        await put(http, PUSH, "/admin/v1/tenants/ghost/receivers/rs1"),
        await http.get("/admin/v1/tenants/ghost/receivers", headers=OPERATOR),
    ):
        assert r.status_code == 404, r.text


# --- CLI ----------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_receiver_commands_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    settings = tmp_path / "acme.json"
    settings.write_text(json.dumps({"issuer": "https://acme.example"}))
    assert run(capsys, "tenant", "put", "acme", str(settings), *data)[0] == 0
    receiver = tmp_path / "rs1.json"
    receiver.write_text(json.dumps(PUSH))
    tenant = ["--tenant", "acme"]

    code, out, _ = run(capsys, "receiver", "put", *tenant, "rs1", "--json", str(receiver), *data)
    assert code == 0
    assert (out["url"], out["authorization_set"], out["state"]["cursor"]) == (URL, True, "0")
    code, out, _ = run(capsys, "receiver", "get", *tenant, "rs1", *data)
    assert code == 0
    assert (out["receiver_id"], out["log"], out["state"]["lag"]) == ("rs1", [], 0)
    code, out, _ = run(capsys, "receiver", "list", *tenant, *data)
    assert [r["receiver_id"] for r in out["receivers"]] == ["rs1"]
    assert AUTHORIZATION not in json.dumps(out)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**PUSH, "events": ["nope"]}))
    code, out, err = run(capsys, "receiver", "put", *tenant, "rs2", "--json", str(bad), *data)
    assert (code, out, json.loads(err)["field"]) == (1, None, "events[0]")

    code, out, _ = run(capsys, "receiver", "delete", *tenant, "rs1", *data)
    assert (code, out) == (0, None)
    code, _, err = run(capsys, "receiver", "get", *tenant, "rs1", *data)
    assert code == 1 and json.loads(err)["error"] == "not_found"
