"""``POST {issuer}/revocation/set-poll/{receiver_id}`` (RFC 8936), on both stores: SETs
until acknowledged, cumulative acknowledgements and errors in the delivery log,
``maxEvents`` and ``moreAvailable``, the long poll, and who may poll."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import pytest

from app.services import Services
from tests.propagation.receiver import until
from tests.support.world import OPERATOR, SECRET, World, basic, make_world

RECEIVERS = "/admin/v1/tenants/acme/receivers"
POLL = "/revocation/set-poll"
POLLER = basic("poller", SECRET)


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http)
    await world.tenant.client("poller", secret=SECRET, scope="revocation_events")
    r = await http.put(
        f"{RECEIVERS}/rp", json={"delivery": "poll", "client_id": "poller"}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    return world


async def poll(
    world: World, body: dict[str, Any], auth: dict[str, str] | None = None, receiver: str = "rp"
) -> httpx.Response:
    headers = {**world.tenant.headers, **(POLLER if auth is None else auth)}
    return await world.tenant.http.post(f"{POLL}/{receiver}", json=body, headers=headers)


async def sets_of(world: World, body: dict[str, Any]) -> tuple[dict[str, str], bool]:
    r = await poll(world, {"returnImmediately": True, **body})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    answer = r.json()
    return answer["sets"], answer["moreAvailable"]


async def revoke_some(world: World, n: int, prefix: str = "tok") -> list[int]:
    tokens = [f"{prefix}{i}" for i in range(n)]
    await world.tenant.register(
        *({"token": t, "type": "access_token", "client_id": "app"} for t in tokens)
    )
    before = {e["id"] for e in await world.tenant.events()}
    for token in tokens:
        assert (await world.tenant.revoke(token, auth=world.app)).status_code == 200
    return sorted(int(e["id"]) for e in await world.tenant.events() if e["id"] not in before)


def txn(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["txn"])


async def receiver_state(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get(f"{RECEIVERS}/rp", headers=OPERATOR)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_sets_are_sent_until_acknowledged_cumulatively(
    http: httpx.AsyncClient, world: World
) -> None:
    ids = await revoke_some(world, 3)
    sets, more = await sets_of(world, {})
    assert [txn(s) for s in sets.values()] == ids and more is False
    # Not acknowledged: the same SETs again, with the same jtis.
    again, _ = await sets_of(world, {})
    assert list(again) == list(sets)

    jtis = list(sets)
    after_ack, _ = await sets_of(world, {"ack": [jtis[1]]})
    assert list(after_ack) == [jtis[2]]
    body = await receiver_state(http)
    assert body["state"]["cursor"] == str(ids[1])
    assert body["log"][0] == {**body["log"][0], "outcome": "acknowledged", "event_id": str(ids[1])}

    errs = {jtis[2]: {"err": "invalid_key", "description": "unknown kid"}}
    after_err, more = await sets_of(world, {"setErrs": errs, "maxEvents": 0})
    assert after_err == {} and more is False
    body = await receiver_state(http)
    assert body["state"]["cursor"] == str(ids[2])
    assert body["log"][0]["outcome"] == "set_error"
    assert body["log"][0]["detail"] == "invalid_key: unknown kid"


async def test_sets_are_signed_with_the_published_key_for_the_client(world: World) -> None:
    await revoke_some(world, 1)
    sets, _ = await sets_of(world, {})
    r = await world.tenant.http.get(f"{world.tenant.issuer}/jwks")
    keys = {key["kid"]: jwt.PyJWK(key) for key in r.json()["keys"]}
    for jti, token in sets.items():
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "secevent+jwt"
        claims = jwt.decode(
            token,
            keys[header["kid"]].key,
            algorithms=["ES256"],
            audience="poller",
            issuer=world.tenant.issuer,
        )
        assert claims["jti"] == jti


async def test_max_events_and_more_available(world: World) -> None:
    ids = await revoke_some(world, 3)
    sets, more = await sets_of(world, {"maxEvents": 2})
    assert [txn(s) for s in sets.values()] == ids[:2] and more is True
    rest, more = await sets_of(world, {"ack": list(sets), "maxEvents": 2})
    assert [txn(s) for s in rest.values()] == ids[2:] and more is False


async def test_acks_of_other_receivers_or_unknown_jtis_change_nothing(
    http: httpx.AsyncClient, world: World
) -> None:
    ids = await revoke_some(world, 2)
    sets, _ = await sets_of(world, {})
    foreign = f"{ids[1]}.000000000000"
    unborn = "999999.000000000000"
    again, _ = await sets_of(world, {"ack": [foreign, unborn, "nonsense"]})
    assert list(again) == list(sets)
    assert (await receiver_state(http))["state"]["cursor"] == str(ids[0] - 1)


async def test_a_long_poll_is_answered_when_an_event_comes(
    services: Services, world: World
) -> None:
    waiting = asyncio.create_task(poll(world, {"returnImmediately": False}))
    await until(lambda: services.notifier.waiting >= 1 or waiting.done(), "the poll waiting")
    assert not waiting.done(), (await waiting).text
    ids = await revoke_some(world, 1)
    r = await asyncio.wait_for(waiting, 20)
    assert r.status_code == 200
    assert [txn(s) for s in r.json()["sets"].values()] == ids


async def test_credentials_in_the_json_body_authenticate(world: World) -> None:
    await world.tenant.client(
        "post-poller", secret=SECRET, method="client_secret_post", scope="revocation_events"
    )
    r = await world.tenant.http.put(
        f"{RECEIVERS}/rp2",
        json={"delivery": "poll", "client_id": "post-poller"},
        headers=OPERATOR,
    )
    assert r.status_code == 201
    body = {"returnImmediately": True, "client_id": "post-poller", "client_secret": SECRET}
    r = await poll(world, body, auth={}, receiver="rp2")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("auth", "receiver", "status", "error"),
    [
        ({}, "rp", 401, "invalid_client"),
        (basic("poller", "wrong-secret-0123456789"), "rp", 401, "invalid_client"),
        (basic("reader-no-scope", SECRET), "rp", 403, "insufficient_scope"),
        (basic("other-reader", SECRET), "rp", 403, "forbidden"),
        (POLLER, "nobody", 404, "not_found"),
        (POLLER, "pushed", 404, "not_found"),
    ],
)
async def test_who_may_poll(
    world: World, auth: dict[str, str], receiver: str, status: int, error: str
) -> None:
    await world.tenant.client("reader-no-scope", secret=SECRET)
    await world.tenant.client("other-reader", secret=SECRET, scope="revocation_events")
    r = await world.tenant.http.put(
        f"{RECEIVERS}/pushed",
        json={"url": "https://rs.example.com/events"},
        headers=OPERATOR,
    )
    assert r.status_code == 201
    r = await poll(world, {"returnImmediately": True}, auth=auth, receiver=receiver)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"ack": "1.abc"},
        {"ack": [1]},
        {"setErrs": {"x": "bad"}},
        {"maxEvents": -1},
        {"maxEvents": True},
        {"returnImmediately": "yes"},
    ],
)
async def test_a_malformed_body_is_invalid_request(world: World, body: Any) -> None:
    r = await poll(world, body)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
