"""Two service processes on one MongoDB database (a SecantusDB process here).

A revocation through one instance is seen through the other at once; a tenant setting
changed through one is in force on the other as soon as the change stream delivers it;
killing the database mid-load loses no acknowledged revocation, and both instances
recover without a restart.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.issuer_keys import access_claims, ec_key
from tests.support.secantus import ServerProcess
from tests.support.server import ServerProcess as Service
from tests.support.server import running_server
from tests.support.world import basic

ADMIN_KEY = "multi-instance-operator-key-0123456789"
OPERATOR = {"Authorization": f"Bearer {ADMIN_KEY}"}
TENANT = {"Tenant-ID": "shared"}
SECRET = "shared-app-secret-0123456789"
APP = {**TENANT, **basic("app", SECRET)}
RS = {**TENANT, **basic("rs", SECRET)}
# Well above the change stream's delivery time and well below the periodic full
# refresh (30 s), so passing proves the change stream did it.
PROPAGATION_DEADLINE_S = 10.0


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "mongo", sync_on_commit=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def instances(tmp_path: Path, mongo: ServerProcess) -> Iterator[tuple[Service, Service]]:
    env = {
        "REVOCATION_MASTER_KEY": secrets.token_hex(32),
        "REVOCATION_ADMIN_KEY": ADMIN_KEY,
        "PATH": os.environ.get("PATH", ""),
    }
    database = f"multi_{secrets.token_hex(4)}"
    with ExitStack() as stack:
        a, b = (
            stack.enter_context(
                running_server(
                    [
                        "--no-tenants",
                        "--data-dir",
                        str(tmp_path / name),
                        "--mongodb-uri",
                        mongo.uri.replace("/?", f"/{database}?"),
                    ],
                    cwd=tmp_path,
                    env=env,
                )
            )
            for name in ("a", "b")
        )
        yield a, b


async def _setup(http_a: httpx.AsyncClient, tokens: int) -> None:
    r = await http_a.put(
        "/admin/v1/tenants/shared", json={"issuer": "https://shared.example"}, headers=OPERATOR
    )
    assert r.status_code == 201, r.text
    for client_id, scope in (("app", ""), ("rs", "introspect")):
        r = await http_a.put(
            f"/admin/v1/tenants/shared/clients/{client_id}",
            headers=OPERATOR,
            json={"type": "confidential", "client_secret": SECRET, "scope": scope},
        )
        assert r.status_code == 201, r.text
    batch = [
        {"token": f"tok-{i}", "type": "access_token", "client_id": "app", "exp": 2**31}
        for i in range(tokens)
    ]
    r = await http_a.post("/admin/v1/tenants/shared/credentials", json=batch, headers=OPERATOR)
    assert r.json() == {"registered": tokens, "duplicates": 0}


async def _until(predicate, deadline_s: float) -> float:  # type: ignore[no-untyped-def]
    """Await ``predicate()`` until it is true; return how long it took (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {deadline_s} s")


async def test_revocation_and_settings_cross_instances(instances: tuple[Service, Service]) -> None:
    a, b = instances
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        await _setup(http_a, 10)

        async def b_knows_tenant() -> bool:
            return (
                await http_b.get("/.well-known/openid-configuration", headers=TENANT)
            ).status_code == 200

        took = await _until(b_knows_tenant, PROPAGATION_DEADLINE_S)
        print(f"tenant created through A known to B after {took * 1000:.0f} ms")

        # Revocation state is never cached: B sees A's revocation at once, and back.
        assert (
            await http_a.post("/token/revoke", data={"token": "tok-1"}, headers=APP)
        ).status_code == 200
        assert (
            await http_b.post("/token/introspect", data={"token": "tok-1"}, headers=RS)
        ).json() == {"active": False}
        assert (
            await http_b.post("/token/revoke", data={"token": "tok-2"}, headers=APP)
        ).status_code == 200
        assert (
            await http_a.post("/token/introspect", data={"token": "tok-2"}, headers=RS)
        ).json() == {"active": False}
        assert (await http_a.post("/token/introspect", data={"token": "tok-3"}, headers=RS)).json()[
            "active"
        ] is True

        # A setting changed through A is in force on B.
        r = await http_a.patch(
            "/admin/v1/tenants/shared", json={"revocation": {"enabled": False}}, headers=OPERATOR
        )
        assert r.status_code == 200

        async def b_refuses() -> bool:
            # An unregistered token: a probe that B still answers must revoke nothing.
            r = await http_b.post("/token/revoke", data={"token": "probe"}, headers=APP)
            return r.status_code == 404

        took = await _until(b_refuses, PROPAGATION_DEADLINE_S)
        print(f"setting changed through A in force on B after {took * 1000:.0f} ms")
        assert (await http_a.post("/token/introspect", data={"token": "tok-3"}, headers=RS)).json()[
            "active"
        ] is True

        # A client's new secret, set through B, works on A.
        r = await http_b.put(
            "/admin/v1/tenants/shared/clients/app",
            headers=OPERATOR,
            json={"type": "confidential", "client_secret": "rotated-secret-0123456789"},
        )
        assert r.status_code == 200

        async def a_accepts_rotated() -> bool:
            r = await http_a.post(
                "/token/introspect",
                data={"token": "x"},
                headers={**TENANT, **basic("app", "rotated-secret-0123456789")},
            )
            return r.status_code == 403  # authenticated, lacks the introspect scope

        await _until(a_accepts_rotated, PROPAGATION_DEADLINE_S)


async def test_killing_the_database_mid_load_loses_no_acknowledged_revocation(
    instances: tuple[Service, Service], mongo: ServerProcess
) -> None:
    a, b = instances
    tokens = 600
    statuses: dict[str, int] = {}
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as http_b,
    ):
        await _setup(http_a, tokens)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(tokens):
            queue.put_nowait(i)
        acknowledged_before_kill = asyncio.Event()

        async def worker(http: httpx.AsyncClient) -> None:
            while not queue.empty():
                i = queue.get_nowait()
                r = await http.post("/token/revoke", data={"token": f"tok-{i}"}, headers=APP)
                statuses[f"tok-{i}"] = r.status_code
                if r.status_code == 503:
                    assert r.json() == {"error": "temporarily_unavailable"}
                    assert int(r.headers["retry-after"]) > 0
                if sum(s == 200 for s in statuses.values()) >= 150:
                    acknowledged_before_kill.set()

        async def chaos() -> None:
            await acknowledged_before_kill.wait()
            mongo.kill()  # SIGKILL, mid-load
            outage = sum(s == 503 for s in statuses.values())

            async def outage_seen() -> bool:
                return sum(s == 503 for s in statuses.values()) > outage + 20 or queue.empty()

            await _until(outage_seen, 60)
            r = await http_b.get("/readyz")
            assert r.status_code == 503
            await asyncio.to_thread(mongo.start)

        await asyncio.gather(*(worker(h) for h in (http_a, http_b) * 4), chaos())

        # Both instances recover without a restart.
        for http in (http_a, http_b):

            async def ready(http: httpx.AsyncClient = http) -> bool:
                return (await http.get("/readyz")).status_code == 200

            await _until(ready, 60)
        assert set(statuses.values()) <= {200, 503}, statuses
        assert sum(s == 503 for s in statuses.values()) > 0, "the outage was not observed"
        acknowledged = [t for t, s in statuses.items() if s == 200]
        assert len(acknowledged) >= 150
        for token in acknowledged:
            r = await http_b.post("/token/introspect", data={"token": token}, headers=RS)
            assert r.json() == {"active": False}, token
        # And revocation works again after the outage.
        r = await http_a.post("/token/revoke", data={"token": "tok-1"}, headers=APP)
        assert r.status_code == 200


async def test_a_jwt_revoked_through_one_instance_is_inactive_on_the_other(
    instances: tuple[Service, Service],
) -> None:
    a, b = instances
    key = ec_key()
    at = key.sign(access_claims("https://shared.example"))
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        await _setup(http_a, 1)
        r = await http_a.patch(
            "/admin/v1/tenants/shared",
            json={"jwt_access_tokens": {"jwks": key.jwks()}},
            headers=OPERATOR,
        )
        assert r.status_code == 200, r.text

        async def b_knows_the_keys() -> bool:
            r = await http_b.post("/token/introspect", data={"token": at}, headers=RS)
            return r.status_code == 200 and r.json()["active"] is True

        await _until(b_knows_the_keys, PROPAGATION_DEADLINE_S)
        r = await http_a.post("/token/revoke", data={"token": at}, headers=APP)
        assert r.status_code == 200
        # The deny entry is in the shared store before A answers: B sees it at once.
        r = await http_b.post("/token/introspect", data={"token": at}, headers=RS)
        assert r.json() == {"active": False}


MAPPER = """
def response_mapping(context, response):
    return {"attributes": {"plugin_version": %d}}
"""


async def test_an_uploaded_plugin_is_in_force_on_the_other_instance(
    instances: tuple[Service, Service],
) -> None:
    a, b = instances
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=10) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=10) as http_b,
    ):
        await _setup(http_a, 1)
        python = {**OPERATOR, "Content-Type": "text/x-python"}
        for version in (1, 2):
            r = await http_a.put(
                "/admin/v1/tenants/shared/plugins/mapper", content=MAPPER % version, headers=python
            )
            assert r.json()["version"] == version, r.text
            if version == 1:
                r = await http_a.patch(
                    "/admin/v1/tenants/shared",
                    json={"plugins": {"enabled": [{"name": "mapper"}]}},
                    headers=OPERATOR,
                )
                assert r.status_code == 200, r.text

            async def b_runs_it(version: int = version) -> bool:
                r = await http_b.post("/token/revoke", data={"token": "unknown"}, headers=APP)
                assert r.status_code == 200, r.text
                return bool(r.content) and r.json().get("plugin_version") == version

            took = await _until(b_runs_it, PROPAGATION_DEADLINE_S)
            print(
                f"plugin version {version} uploaded through A ran on B after {took * 1000:.0f} ms"
            )
