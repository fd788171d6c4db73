"""Limits on failed client authentication (contract section 7), through HTTP.

Time moves by the service clock, never by sleeping. The source address is set with
``X-Forwarded-For`` from the test client's peer (127.0.0.1, a trusted proxy here) or by
the peer address itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from starlette.applications import Starlette

from app.config import ServiceConfig
from app.errors import StoreUnavailable
from app.services import Services
from tests.oauth.test_rfc7523_client_assertions import private_key_client
from tests.plugins.probes import _probe
from tests.store.test_assertion_ids import second_instance
from tests.store.test_auth_failures import changed
from tests.support.issuer_keys import ec_key
from tests.support.secantus import ServerProcess as MongoProcess
from tests.support.server import ServerProcess, running_server
from tests.support.world import OPERATOR, SECRET, World, basic, make_world

PROBES = Path(__file__).resolve().parent.parent / "plugins" / "probes"
LIMITS: dict[str, Any] = {"rate_limits": {"per_client_per_minute": 3, "per_address_per_minute": 8}}
WRONG = basic("app", "wrong-secret-0123456789")
A, B = "198.51.100.1", "198.51.100.2"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        data_dir=tmp_path / "data",
        tenants_dir=None,
        plugins_dir=PROBES,
        forwarded_allow_ips=("127.0.0.1", "10.0.0.0/8"),
    )


class Clock:
    """The service clock, frozen until a test moves it."""

    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> int:
        return self.now

    @property
    def window_end(self) -> int:
        return self.now - self.now % 60 + 60

    def next_window(self) -> None:
        self.now = self.window_end


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock()
    services.clock = clock
    return clock


@pytest.fixture
async def world(http: httpx.AsyncClient, clock: Clock) -> World:
    return await make_world(http, **LIMITS)


def at(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def revoke(world: World, auth: dict[str, str], address: str) -> httpx.Response:
    return await world.tenant.revoke("t", auth={**auth, **at(address)})


def limited(r: httpx.Response, clock: Clock) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"]
    assert "client_auth_id" not in body
    assert r.headers["retry-after"] == str(clock.window_end - clock.now)


async def fail(world: World, times: int, address: str, auth: dict[str, str] = WRONG) -> None:
    for _ in range(times):
        r = await revoke(world, auth, address)
        assert r.status_code == 401, r.text


# --- the limits ------------------------------------------------------------------------


async def test_the_limit_reached_answers_429_until_the_window_ends(
    world: World, clock: Clock
) -> None:
    await fail(world, 3, A)
    limited(await revoke(world, WRONG, A), clock)
    # The right secret from the locked address gets the same answer: no oracle.
    limited(await revoke(world, world.app, A), clock)
    # Refusals do not extend the lock: it ends with the window, however many came.
    clock.now = clock.window_end - 1
    for _ in range(5):
        r = await revoke(world, world.app, A)
        limited(r, clock)
        assert r.headers["retry-after"] == "1"
    clock.next_window()
    assert (await revoke(world, world.app, A)).status_code == 200
    await fail(world, 3, A)
    limited(await revoke(world, world.app, A), clock)


async def test_a_correct_secret_from_another_address_is_not_locked_out(
    world: World, clock: Clock
) -> None:
    await fail(world, 3, A)
    limited(await revoke(world, world.app, A), clock)
    assert (await revoke(world, world.app, B)).status_code == 200
    # B's failures are B's own.
    await fail(world, 3, B)
    limited(await revoke(world, world.app, B), clock)


async def test_successes_neither_count_nor_reset(world: World, clock: Clock) -> None:
    for _ in range(10):
        assert (await revoke(world, world.app, A)).status_code == 200
    await fail(world, 2, A)
    assert (await revoke(world, world.app, A)).status_code == 200
    await fail(world, 1, A)
    limited(await revoke(world, world.app, A), clock)


async def test_the_per_address_limit_spans_clients(world: World, clock: Clock) -> None:
    # Eight failures from A, each for another (unknown) client.
    for i in range(8):
        await fail(world, 1, A, basic(f"ghost-{i}", "whatever"))
    other = basic("other", SECRET)
    r = await revoke(world, other, A)
    limited(r, clock)
    assert (await revoke(world, other, B)).status_code == 200
    # No client authentication at all counts too (the address only).
    await world.tenant.patch({"rate_limits": {"per_address_per_minute": 10}})
    for _ in range(2):
        r = await world.tenant.http.post(
            "/token/revoke", data={"token": "t"}, headers={**world.tenant.headers, **at(A)}
        )
        assert r.status_code == 401
    limited(await revoke(world, other, A), clock)


async def test_introspection_shares_the_counts(world: World, clock: Clock) -> None:
    await fail(world, 3, A, basic("rs", "wrong"))
    r = await world.tenant.http.post(
        "/token/introspect",
        data={"token": "t"},
        headers={**world.tenant.headers, **world.rs, **at(A)},
    )
    limited(r, clock)
    r = await world.tenant.http.post(
        "/token/introspect",
        data={"token": "t"},
        headers={**world.tenant.headers, **world.rs, **at(B)},
    )
    assert r.json() == {"active": False}


async def test_failures_at_one_tenant_never_lock_another(
    http: httpx.AsyncClient, world: World, clock: Clock
) -> None:
    globex = await make_world(http, "globex", **LIMITS)
    await fail(world, 3, A)
    limited(await revoke(world, world.app, A), clock)
    assert (await revoke(globex, globex.app, A)).status_code == 200
    await fail(globex, 2, A)
    assert (await revoke(globex, globex.app, A)).status_code == 200


async def test_refused_client_assertions_count(world: World, clock: Clock) -> None:
    party = await private_key_client(world, "rp", ec_key("rp-1"))
    forged = ec_key("rp-1").sign(party.claims(), typ="JWT")
    for _ in range(3):
        r = await party.revoke("t", forged)
        assert r.status_code == 401
    # The header is the source: the requests above came from the test client's peer.
    r = await party.revoke("t", party.assertion())
    limited(r, clock)


async def test_a_pre_auth_plugins_401_counts(world: World, clock: Clock) -> None:
    reject = {"reject": {"status": 401, "error": "invalid_client", "error_description": "no"}}
    await world.tenant.patch(
        {"plugins": {"enabled": [{"name": "probe_a", "config": {"pre_auth": reject}}]}}
    )
    _probe.CALLS.clear()
    await fail(world, 3, A, world.app)
    assert len(_probe.calls("pre_auth")) == 3
    limited(await revoke(world, world.app, A), clock)
    # Checked before the plugin runs: a locked address does not reach it.
    assert len(_probe.calls("pre_auth")) == 3
    _probe.CALLS.clear()


async def test_a_burst_is_counted_whole(services: Services, world: World, clock: Clock) -> None:
    statuses = [
        r.status_code for r in await asyncio.gather(*(revoke(world, WRONG, A) for _ in range(20)))
    ]
    assert set(statuses) <= {401, 429}
    if services.store.name == "sqlite":
        # Within a process, a failure counts from the moment it is known, before it is
        # stored: the burst gets exactly the limit's worth of answers.
        assert statuses.count(401) == 3
    window = clock.now - clock.now % 60
    keys = [f"client {A} app", f"address {A}"]
    failures = statuses.count(401)
    assert await services.store.auth_failures("acme", keys, window) == [failures, failures]
    limited(await revoke(world, world.app, A), clock)


async def test_failures_counted_by_another_process_are_seen(
    services: Services, world: World, clock: Clock
) -> None:
    """This process remembers that A had no failures and skips the read; a failure
    committed by another worker or instance still counts: at once on SQLite, once the
    change stream brings it on MongoDB."""
    store = services.store
    assert (await revoke(world, world.app, A)).status_code == 200
    stamp = await changed(lambda: store.auth_failures_stamp("acme", f"address {A}"), None)
    assert (await revoke(world, world.app, A)).status_code == 200  # remembered as quiet
    window = clock.now - clock.now % 60
    async with second_instance(store) as other:
        for _ in range(3):
            await other.record_auth_failure(
                "acme", [f"client {A} app", f"address {A}"], window, window + 60
            )
        await changed(lambda: store.auth_failures_stamp("acme", f"address {A}"), stamp)
    limited(await revoke(world, world.app, A), clock)
    assert (await revoke(world, world.app, B)).status_code == 200


# --- the source address -----------------------------------------------------------------


async def test_behind_trusted_proxies_the_forwarded_address_counts(
    world: World, clock: Clock
) -> None:
    # 10.0.0.0/8 are proxies too: the address is the right-most entry that is not one.
    await fail(world, 3, "203.0.113.7, 10.1.2.3")
    limited(await revoke(world, world.app, "203.0.113.7"), clock)
    # What the client itself wrote, left of the address the proxies saw, changes nothing.
    limited(await revoke(world, world.app, "192.0.2.99, 203.0.113.7, 10.9.9.9"), clock)
    assert (await revoke(world, world.app, "203.0.113.7, 203.0.113.8")).status_code == 200


async def test_from_an_untrusted_peer_x_forwarded_for_is_ignored(
    app: Starlette, world: World, clock: Clock
) -> None:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as direct:
        headers = {**world.tenant.headers, **WRONG}
        for i in range(3):
            r = await direct.post(
                "/token/revoke", data={"token": "t"}, headers={**headers, **at(f"203.0.113.{i}")}
            )
            assert r.status_code == 401
        r = await direct.post(
            "/token/revoke",
            data={"token": "t"},
            headers={**world.tenant.headers, **world.app, **at("203.0.113.200")},
        )
        limited(r, clock)
    # The same address through a trusted proxy is the same source.
    limited(await revoke(world, world.app, "192.0.2.50"), clock)


async def test_the_canonical_line_names_the_source_address(
    http: httpx.AsyncClient, world: World, clock: Clock
) -> None:
    with structlog.testing.capture_logs() as logs:
        await revoke(world, world.app, "2001:DB8::1")
        await http.get("/admin/v1/tenants/acme", headers={**OPERATOR, **at("::ffff:192.0.2.9")})
        await fail(world, 3, A)
        await revoke(world, world.app, A)
    lines = [line for line in logs if line["event"] == "request"]
    assert [line["source_address"] for line in lines] == ["2001:db8::1", "192.0.2.9", *[A] * 4]
    assert lines[-1]["status"] == 429
    assert lines[-1]["rate_limited"] == "client"


# --- settings, flags and outages --------------------------------------------------------


async def test_service_flags_apply_where_the_tenant_sets_no_limit(
    http: httpx.AsyncClient, services: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(http)
    services.config = dataclasses.replace(
        services.config, rate_limit_per_client=2, rate_limit_per_address=0
    )
    await fail(world, 2, A)
    limited(await revoke(world, world.app, A), clock)
    await world.tenant.patch({"rate_limits": {"per_client_per_minute": 4}})
    await fail(world, 2, A)
    limited(await revoke(world, world.app, A), clock)
    # With both limits off (and the tenant setting none), the store is not even asked.
    await world.tenant.patch({"rate_limits": None})
    services.config = dataclasses.replace(services.config, rate_limit_per_client=0)

    async def unreachable(*args: Any) -> list[int]:
        raise AssertionError("no limit: nothing to read")

    monkeypatch.setattr(services.store, "auth_failures", unreachable)
    assert (await revoke(world, world.app, A)).status_code == 200


async def test_a_store_outage_during_the_check_is_503(
    services: Services, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def outage(*args: Any) -> list[int]:
        raise StoreUnavailable("test: the store is gone")

    monkeypatch.setattr(services.store, "auth_failures", outage)
    r = await revoke(world, world.app, A)
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable"}
    assert int(r.headers["retry-after"]) > 0


# --- across processes ---------------------------------------------------------------------

SERVICE_ENV = {
    "REVOCATION_ADMIN_KEY": "test-operator-key-0123456789",
    "PATH": os.environ.get("PATH", ""),
}
PER_CLIENT = 6


async def _tenant(http: httpx.AsyncClient) -> None:
    r = await http.put(
        "/admin/v1/tenants/shared",
        json={
            "issuer": "https://shared.example",
            "rate_limits": {"per_client_per_minute": PER_CLIENT},
        },
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    r = await http.put(
        "/admin/v1/tenants/shared/clients/app",
        headers=OPERATOR,
        json={"type": "confidential", "client_secret": SECRET},
    )
    assert r.status_code == 201, r.text


SHARED = {"Tenant-ID": "shared"}


def _worker_of(server: ServerProcess, response: httpx.Response) -> int:
    """The process holding the server's end of the response's connection (Linux /proc)."""
    client_port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if local == server.port and remote == client_port:
                inode = fields[9]
    assert inode is not None, "the connection is not in /proc/net"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[3] != str(server.process.pid):
                continue  # not of the server's session
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


async def test_two_workers_share_the_count(tmp_path: Path) -> None:
    args = ["--no-tenants", "--data-dir", str(tmp_path / "data"), "--workers", "2"]
    with running_server(args, cwd=tmp_path, env=SERVICE_ENV) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as admin:
            await _tenant(admin)

        async def send(auth: dict[str, str], address: str) -> tuple[int, int]:
            """On a new connection: which worker accepts it is the kernel's choice."""
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                r = await http.post(
                    "/token/revoke", data={"token": "t"}, headers={**SHARED, **auth, **at(address)}
                )
                return r.status_code, _worker_of(server, r)

        correct = basic("app", SECRET)
        # A fresh address each round, until a round has had both workers answer before
        # and after the failures, within one window.
        for round_ in range(20):
            address = f"203.0.113.{round_}"
            minute = int(time.time()) // 60
            # Both workers remember the address as one without failures...
            before: dict[int, int] = {}
            for _ in range(40):
                status, worker = await send(correct, address)
                before[worker] = status
                if len(before) == 2:
                    break
            # ... then see the failures, wherever they were counted.
            for _ in range(PER_CLIENT):
                assert (await send(WRONG, address))[0] == 401
            after: dict[int, int] = {}
            for _ in range(40):
                status, worker = await send(correct, address)
                after[worker] = status
                if len(after) == 2:
                    break
            if int(time.time()) // 60 != minute:
                continue  # a new window began during the round
            assert set(before.values()) <= {200}
            assert set(after.values()) == {429}
            if len(before) == len(after) == 2:
                return
        raise AssertionError("the kernel never gave both workers a connection")


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoProcess]:
    server = MongoProcess(tmp_path / "mongo")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def instances(
    tmp_path: Path, mongo: MongoProcess
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    env = {**SERVICE_ENV, "REVOCATION_MASTER_KEY": secrets.token_hex(32)}
    uri = mongo.uri.replace("/?", f"/limits_{secrets.token_hex(4)}?")
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(
                running_server(
                    ["--no-tenants", "--data-dir", str(tmp_path / name), "--mongodb-uri", uri],
                    cwd=tmp_path,
                    env=env,
                )
            )
            for name in ("a", "b")
        )
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
        ):
            yield http_a, http_b


async def test_two_instances_on_mongodb_share_the_count(
    instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    http_a, http_b = instances
    await _tenant(http_a)
    # B learns of the tenant from its change stream.
    deadline = time.monotonic() + 10
    while (
        await http_b.get("/.well-known/openid-configuration", headers=SHARED)
    ).status_code != 200:
        assert time.monotonic() < deadline, "instance B never learnt of the tenant"
        await asyncio.sleep(0.02)
    correct = {**SHARED, **basic("app", SECRET)}

    async def revoke_at(http: httpx.AsyncClient, auth: dict[str, str], address: str) -> int:
        r = await http.post("/token/revoke", data={"token": "t"}, headers={**auth, **at(address)})
        return r.status_code

    for round_ in range(3):
        address = f"203.0.113.{round_}"
        minute = int(time.time()) // 60
        # Both instances have answered this address before; the failures go to A only.
        before = [await revoke_at(http, correct, address) for http in (http_a, http_b)]
        failures = [
            await revoke_at(http_a, {**SHARED, **WRONG}, address) for _ in range(PER_CLIENT)
        ]
        after = [await revoke_at(http, correct, address) for http in (http_b, http_a)]
        elsewhere = [await revoke_at(http, correct, B) for http in (http_a, http_b)]
        if int(time.time()) // 60 != minute:
            continue  # a new window began during the round
        assert before == [200, 200]
        assert failures == [401] * PER_CLIENT
        assert after == [429, 429]
        assert elsewhere == [200, 200]
        return
    raise AssertionError("no round within one window")
