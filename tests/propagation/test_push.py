"""Push delivery of Security Event Tokens (RFC 8935) to a local receiver, on both stores:
retries until the receiver recovers, in order, at least once; signatures verified with
the key at ``{issuer}/jwks``; a SET the receiver refuses is skipped; a receiver failing
long enough is paused and a ``PUT`` resumes it; private addresses only with the flag;
a service killed mid-delivery delivers everything after its restart; ``serve --delivery
off`` with a ``deliver`` process of its own, and ``--delivery workers``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from structlog.testing import capture_logs

from app.config import ServiceConfig
from app.propagation.delivery import Deliverer
from app.services import Services
from tests.faults.conftest import TRANSACTION_LIFETIME_S
from tests.faults.deployment import Deployment
from tests.propagation.receiver import (
    LocalReceiver,
    running_receiver,
    until,
    until_true,
    wait_for,
)
from tests.support.secantus import ServerProcess as MongoProcess
from tests.support.server import kill, running_server
from tests.support.world import OPERATOR, World, make_world

RECEIVERS = "/admin/v1/tenants/acme/receivers"
AUTHORIZATION = "Bearer receiver-secret-0123456789"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    # The receiver listens on 127.0.0.1.
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, fetch_allow_private=True)


@pytest.fixture
def receiver() -> Iterator[LocalReceiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
async def deliverer(services: Services) -> AsyncIterator[Deliverer]:
    started = Deliverer(services)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def put_receiver(
    http: httpx.AsyncClient, url: str, receiver_id: str = "r1", **fields: Any
) -> httpx.Response:
    body = {"url": url, "authorization": AUTHORIZATION, **fields}
    return await http.put(f"{RECEIVERS}/{receiver_id}", json=body, headers=OPERATOR)


async def read_receiver(http: httpx.AsyncClient, receiver_id: str = "r1") -> dict[str, Any]:
    r = await http.get(f"{RECEIVERS}/{receiver_id}", headers=OPERATOR)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def revoke_some(world: World, n: int, prefix: str = "tok") -> list[int]:
    """Revoke ``n`` fresh tokens one by one: the ids of their events."""
    tokens = [f"{prefix}{i}" for i in range(n)]
    await world.tenant.register(
        *({"token": t, "type": "access_token", "client_id": "app"} for t in tokens)
    )
    before = {e["id"] for e in await world.tenant.events()}
    for token in tokens:
        r = await world.tenant.revoke(token, auth=world.app)
        assert r.status_code == 200, r.text
    return sorted(int(e["id"]) for e in await world.tenant.events() if e["id"] not in before)


def cursor_at(
    http: httpx.AsyncClient, event_id: int, receiver_id: str = "r1"
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        state = (await read_receiver(http, receiver_id))["state"]
        return bool(state["cursor"] == str(event_id))

    return check


def first_arrivals(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


async def test_every_event_arrives_in_order_once_the_receiver_recovers(
    http: httpx.AsyncClient, receiver: LocalReceiver, deliverer: Deliverer
) -> None:
    world = await make_world(http)
    receiver.fail_status = 500
    assert (await put_receiver(http, receiver.url)).status_code == 201
    ids = await revoke_some(world, 5)
    await until(lambda: receiver.attempts() >= 2, "two failed attempts")
    state = (await read_receiver(http))["state"]
    assert state["status"] == "active" and state["cursor"] == str(ids[0] - 1)

    receiver.fail_status = None
    await until(lambda: set(ids) <= set(receiver.accepted()), "every event delivered")
    assert first_arrivals(receiver.accepted()) == ids
    # Until it recovered, only the first SET was tried, again and again.
    failed = [r.event_id for r in receiver.received if r.status == 500]
    assert set(failed) == {ids[0]}

    await until_true(cursor_at(http, ids[-1]), "the cursor recorded")
    body = await read_receiver(http)
    assert body["state"]["delivered"] >= 5 and body["state"]["attempts"] == 0
    outcomes = [entry["outcome"] for entry in body["log"]]
    assert "failed" in outcomes and outcomes.count("delivered") >= 5


async def test_sets_are_rfc8935_posts_signed_with_the_published_key(
    http: httpx.AsyncClient, receiver: LocalReceiver, deliverer: Deliverer
) -> None:
    world = await make_world(http)
    assert (await put_receiver(http, receiver.url)).status_code == 201
    ids = await revoke_some(world, 2)
    await until(lambda: set(ids) <= set(receiver.accepted()), "both delivered")
    r = await http.get(f"{world.tenant.issuer}/jwks")
    assert r.status_code == 200
    keys = {key["kid"]: jwt.PyJWK(key) for key in r.json()["keys"]}
    for got in receiver.received:
        assert got.headers["content-type"] == "application/secevent+jwt"
        assert got.headers["accept"] == "application/json"
        assert got.headers["authorization"] == AUTHORIZATION
        header = jwt.get_unverified_header(got.token)
        assert header["typ"] == "secevent+jwt"
        claims = jwt.decode(
            got.token,
            keys[header["kid"]].key,
            algorithms=["ES256"],
            audience=receiver.url,
            issuer=world.tenant.issuer,
        )
        assert list(claims["events"]) == ["https://schemas.revocation-service.dev/secevent/revoked"]


async def test_a_set_the_receiver_refuses_is_logged_and_not_sent_again(
    http: httpx.AsyncClient, receiver: LocalReceiver, deliverer: Deliverer
) -> None:
    world = await make_world(http)
    assert (await put_receiver(http, receiver.url)).status_code == 201
    # Event ids are known before the revocations: the next ones after the latest.
    latest = int((await world.tenant.events() or [{"id": "0"}])[-1]["id"])
    receiver.reject = {latest + 2}
    ids = await revoke_some(world, 3)
    assert ids == [latest + 1, latest + 2, latest + 3]
    await until(lambda: {ids[0], ids[2]} <= set(receiver.accepted()), "the others delivered")
    await until_true(cursor_at(http, ids[2]), "the cursor recorded")
    assert receiver.attempts(ids[1]) == 1
    body = await read_receiver(http)
    refused = [e for e in body["log"] if e["outcome"] == "set_error"]
    assert [e["event_id"] for e in refused] == [str(ids[1])]
    assert refused[0]["status"] == 400 and "invalid_request" in refused[0]["detail"]


async def test_a_receiver_failing_long_enough_is_paused_and_a_put_resumes_it(
    http: httpx.AsyncClient, receiver: LocalReceiver, deliverer: Deliverer
) -> None:
    world = await make_world(http, receivers={"pause_after_s": 1})
    receiver.fail_status = 503
    assert (await put_receiver(http, receiver.url)).status_code == 201
    with capture_logs() as logs:
        ids = await revoke_some(world, 2)

        async def paused() -> bool:
            return bool((await read_receiver(http))["state"]["status"] == "paused")

        await until_true(paused, "the receiver paused")
    body = await read_receiver(http)
    assert "pause_after_s" in body["state"]["paused_reason"]
    assert body["log"][0]["outcome"] == "paused"
    warnings = [e for e in logs if e["event"] == "receiver_paused"]
    assert warnings and warnings[0]["log_level"] == "warning"
    assert warnings[0]["receiver_id"] == "r1" and warnings[0]["tenant_id"] == "acme"
    tried = receiver.attempts()

    receiver.fail_status = None
    assert receiver.attempts() == tried  # paused: nothing is sent
    assert (await put_receiver(http, receiver.url)).status_code == 200
    await until(lambda: set(ids) <= set(receiver.accepted()), "delivered after the resume")
    assert first_arrivals(receiver.accepted()) == ids
    assert (await read_receiver(http))["state"]["status"] == "active"


async def test_a_private_receiver_is_refused_without_the_flag(
    http: httpx.AsyncClient, services: Services, receiver: LocalReceiver, deliverer: Deliverer
) -> None:
    world = await make_world(http)
    assert (await put_receiver(http, receiver.url)).status_code == 201
    services.config = dataclasses.replace(services.config, fetch_allow_private=False)
    r = await put_receiver(http, receiver.url, "r2")
    assert r.status_code == 400 and r.json()["field"] == "url"
    # Registered while allowed: every delivery checks the address again.
    await revoke_some(world, 1)

    async def refused() -> bool:
        return "non-public" in ((await read_receiver(http))["state"]["last_error"] or "")

    await until_true(refused, "the delivery refused")
    assert receiver.received == []


# --- a service killed mid-delivery ---------------------------------------------------------

EVENTS = 40


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoProcess]:
    """SecantusDB in a child process (as ``tests/faults``): it outlives the service."""
    server = MongoProcess(
        tmp_path / "mongo", sync_on_commit=True, transaction_lifetime_s=TRANSACTION_LIFETIME_S
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(params=["sqlite", "mongodb"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "sqlite":
        return Deployment(tmp_path)
    return Deployment(tmp_path, mongo=request.getfixturevalue("mongo"))


async def test_a_service_killed_mid_delivery_delivers_every_event_after_restart(
    deployment: Deployment,
) -> None:
    args = ["--no-tenants", "--fetch-allow-private", *deployment.store_args()]
    args += ["--delivery-lease-s", "3"]
    slow = LocalReceiver(delay_s=0.05)
    with running_receiver(slow) as receiver:
        with running_server(args, cwd=deployment.tmp, env=deployment.env()) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                world = await make_world(http)
                assert (await put_receiver(http, receiver.url)).status_code == 201
                ids = await revoke_some(world, EVENTS)
            wait_for(lambda: len(set(receiver.accepted())) >= 5, "some delivered")
            kill(server)
        assert len(set(receiver.accepted())) < EVENTS, "the kill came after the last SET"
        with running_server(args, cwd=deployment.tmp, env=deployment.env()):
            # The killed process's lease runs out first (3 s).
            wait_for(lambda: set(ids) <= set(receiver.accepted()), "every event", 120)
    assert first_arrivals(receiver.accepted()) == ids


async def test_serve_without_delivery_and_a_deliver_process_of_its_own(
    deployment: Deployment,
) -> None:
    # ``serve --delivery off``: an operator runs ``deliver`` elsewhere; it delivers, and
    # on SIGTERM records where it got to and ends.
    store = deployment.store_args()
    args = ["--no-tenants", "--fetch-allow-private", "--delivery", "off", *store]
    with (
        running_receiver() as receiver,
        running_server(args, cwd=deployment.tmp, env=deployment.env()) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            world = await make_world(http)
            assert (await put_receiver(http, receiver.url)).status_code == 201
            ids = await revoke_some(world, 3)
            assert '"delivery_started"' not in server.log()
            # Its log, and a dump of every thread's stack should it not stop (SIGABRT
            # with faulthandler), so that a hang says where it hangs.
            output = (deployment.tmp / "deliver.log").open("wb")
            deliver = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "app", "deliver", "--fetch-allow-private", *store],
                cwd=deployment.tmp,
                env={**os.environ, **deployment.env(), "PYTHONFAULTHANDLER": "1"},
                stdout=output,
                stderr=output,
            )
            output.close()
            try:
                await until(lambda: set(ids) <= set(receiver.accepted()), "delivered")
                deliver.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(60):
                        code = await deliver.wait()
                except TimeoutError:
                    deliver.send_signal(signal.SIGABRT)
                    await deliver.wait()
                    tail = (deployment.tmp / "deliver.log").read_text(errors="replace")[-6000:]
                    raise AssertionError(f"deliver did not stop on SIGTERM:\n{tail}") from None
                assert code == 0
            finally:
                if deliver.returncode is None:
                    deliver.kill()
                    await deliver.wait()
            state = (await read_receiver(http))["state"]
            assert state["cursor"] == str(ids[-1]) and state["delivered"] == 3
    assert first_arrivals(receiver.accepted()) == ids


async def test_serve_delivering_from_its_http_workers(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    args = ["--no-tenants", "--fetch-allow-private", "--delivery", "workers"]
    with (
        running_receiver() as receiver,
        running_server(
            [*args, *deployment.store_args()], cwd=tmp_path, env=deployment.env()
        ) as server,
    ):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            world = await make_world(http)
            assert (await put_receiver(http, receiver.url)).status_code == 201
            ids = await revoke_some(world, 3)
            await until(lambda: set(ids) <= set(receiver.accepted()), "delivered")
        assert '"delivery_started"' not in server.log()
    assert first_arrivals(receiver.accepted()) == ids
