"""``kill -9`` of the service in the middle of a bulk registration, a grant cascade, a
tenant deletion and a ``credential import``, on each store; then a restart on the same
data.

What must hold whatever instant the kill hit: every acknowledged write is there, and
nothing is half done (a registration batch is all or nothing; a grant cascade revoked all
of its grant with one event, or nothing; a deleted tenant's id stays taken until its data
is gone, which the restart finishes).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.faults.admin_views import (
    active,
    all_events,
    live_by_subject,
    live_credentials,
    reattach,
)
from tests.faults.deployment import Deployment
from tests.faults.kill_race import kill_mid_stream
from tests.support.server import ServerProcess, kill
from tests.support.world import OPERATOR, make_world

EXP = 2**31 - 1
WORKERS = 4


@asynccontextmanager
async def admin_http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


def credential(token: str, sub: str, **fields: Any) -> dict[str, Any]:
    base = {"token": token, "type": "access_token", "client_id": "app", "exp": EXP, "sub": sub}
    return {**base, **fields}


async def register(http: httpx.AsyncClient, tenant_id: str, items: list[dict[str, Any]]) -> None:
    r = await http.post(f"/admin/v1/tenants/{tenant_id}/credentials", json=items, headers=OPERATOR)
    assert r.status_code == 200, r.text


# --- bulk registration ------------------------------------------------------------------

BATCH = {"sqlite": 2_000, "mongodb": 150}
"""Credentials per request: enough that the kill finds one mid-transaction."""
BATCHES = 40
ACKNOWLEDGED_BEFORE_KILL = {"sqlite": 6, "mongodb": 4}


def batch(n: int, size: int) -> list[dict[str, Any]]:
    """Batch ``n``: a subject of its own, so that its live credentials can be counted."""
    return [credential(f"batch{n}-{i}", f"batch-{n}") for i in range(size)]


async def test_kill_during_bulk_registration(deployment: Deployment) -> None:
    size = BATCH[deployment.store]
    with deployment.service() as server:
        async with admin_http(server) as http:
            await make_world(http)

            async def send(n: int) -> httpx.Response:
                return await http.post(
                    "/admin/v1/tenants/acme/credentials", json=batch(n, size), headers=OPERATOR
                )

            race = await kill_mid_stream(
                server,
                send,
                range(BATCHES),
                workers=WORKERS,
                kill_after=ACKNOWLEDGED_BEFORE_KILL[deployment.store],
            )

    with deployment.service() as server:
        async with admin_http(server) as http:
            live = await live_by_subject(http, "acme", (f"batch-{n}" for n in range(BATCHES)))
            for n in range(BATCHES):
                registered = live[f"batch-{n}"]
                if n in race.acknowledged:
                    assert registered == size, f"acknowledged batch {n}: {registered} of {size}"
                elif n in race.cut_off:
                    assert registered in (0, size), f"batch {n}: {registered} of {size}"
                else:
                    assert registered == 0, f"batch {n} was never sent"
            committed = 0
            for n in race.cut_off:
                registered = live[f"batch-{n}"]
                committed += registered == size
                # Sent again, a batch the kill cut off is registered whole or counted
                # whole as duplicates, never some of each.
                r = await http.post(
                    "/admin/v1/tenants/acme/credentials", json=batch(n, size), headers=OPERATOR
                )
                assert r.json() == {"registered": size - registered, "duplicates": registered}
    print(
        f"{deployment.store}: {len(race.acknowledged)} batches of {size} acknowledged, "
        f"{len(race.cut_off)} cut off by the kill, {committed} of those committed"
    )


# --- grant cascade ----------------------------------------------------------------------

GRANT_SIZE = {"sqlite": 400, "mongodb": 30}
"""Access tokens per grant, besides its refresh token."""
GRANTS = {"sqlite": 40, "mongodb": 24}
CASCADES_BEFORE_KILL = {"sqlite": 8, "mongodb": 6}


def grant(n: int, size: int) -> list[dict[str, Any]]:
    """Grant ``n``: a refresh token and ``size`` access tokens of subject ``user-n``."""
    fields = {"grant_id": f"grant-{n}"}
    refresh = credential(f"rt-{n}", f"user-{n}", type="refresh_token", **fields)
    return [refresh] + [credential(f"at-{n}-{i}", f"user-{n}", **fields) for i in range(size)]


async def test_kill_during_grant_cascades(deployment: Deployment) -> None:
    size = GRANT_SIZE[deployment.store]
    with deployment.service() as server:
        async with admin_http(server) as http:
            world = await make_world(http)  # cascade policy: grant (the default)
            grants = GRANTS[deployment.store]
            items = [c for n in range(grants) for c in grant(n, size)]
            for start in range(0, len(items), 5_000):
                await register(http, "acme", items[start : start + 5_000])

            async def send(n: int) -> httpx.Response:
                return await world.tenant.revoke(f"rt-{n}", auth=world.app)

            race = await kill_mid_stream(
                server,
                send,
                range(grants),
                workers=WORKERS,
                kill_after=CASCADES_BEFORE_KILL[deployment.store],
            )

    with deployment.service() as server:
        async with admin_http(server) as http:
            world = reattach(http, "acme")
            events = await all_events(http, "acme")
            assert all(e["type"] == "revoked" and e["count"] == size + 1 for e in events), events
            per_grant = Counter(e["grant_id"] for e in events)
            live = await live_by_subject(http, "acme", (f"user-{n}" for n in range(grants)))
            seen = await active(
                world, (t for n in range(grants) for t in (f"rt-{n}", f"at-{n}-{size - 1}"))
            )
            committed = 0
            for n in range(grants):
                left = live[f"user-{n}"]
                if n in race.acknowledged:
                    assert left == 0, f"acknowledged cascade {n}: {left} still active"
                assert left in (0, size + 1), f"grant {n}: {left} of {size + 1} active"
                assert per_grant[f"grant-{n}"] == (left == 0), f"grant {n}: events"
                assert seen[f"rt-{n}"] is seen[f"at-{n}-{size - 1}"] is (left > 0)
                committed += n in race.cut_off and left == 0
    print(
        f"{deployment.store}: {len(race.acknowledged)} cascades of {size + 1} credentials "
        f"acknowledged, {len(race.cut_off)} cut off by the kill, {committed} of those committed"
    )


# --- tenant deletion --------------------------------------------------------------------

DOOMED_CREDENTIALS = {"sqlite": 40_000, "mongodb": 1_500}
"""Enough rows that deleting them (in chunks) takes far longer than seeing it begin."""
DOOMED_BATCH = {"sqlite": 10_000, "mongodb": 750}


def put_tenant_with_the_cli(deployment: Deployment, tenant_id: str) -> str:
    """``revocation-service tenant put`` on the stopped service's data: its error."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "app", "tenant", "put", tenant_id),
            *("--from-json", json.dumps({"issuer": f"https://{tenant_id}.example"})),
            *deployment.store_args(),
        ],
        cwd=deployment.tmp,
        env={**os.environ, **deployment.env()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    error: str = json.loads(done.stderr.strip().splitlines()[-1])["error_description"]
    return error


async def test_kill_during_a_tenant_deletion(deployment: Deployment) -> None:
    total, per_batch = DOOMED_CREDENTIALS[deployment.store], DOOMED_BATCH[deployment.store]
    with deployment.service() as server:
        async with admin_http(server) as http:
            bystander = await make_world(http, "acme")
            await register(http, "acme", [credential(f"acme-{i}", "alice") for i in (1, 2)])
            assert (await bystander.tenant.revoke("acme-1", auth=bystander.app)).status_code == 200
            doomed = await make_world(http, "doomed")
            for start in range(0, total, per_batch):
                items = range(start, start + per_batch)
                await register(http, "doomed", [credential(f"d-{i}", f"u-{i % 10}") for i in items])
            assert (await doomed.tenant.revoke("d-0", auth=doomed.app)).status_code == 200

            # The configuration goes first, in one transaction, then the data in chunks:
            # kill as soon as the tenant is seen gone.
            deletion = asyncio.create_task(
                http.delete("/admin/v1/tenants/doomed", headers=OPERATOR)
            )
            while (await http.get("/admin/v1/tenants/doomed", headers=OPERATOR)).is_success:
                assert not deletion.done()
            kill(server)
            await asyncio.wait([deletion])
            assert isinstance(deletion.exception(), httpx.TransportError), "not cut off"

    # Until its data is gone, the id is not free, not even for the admin commands.
    assert "being deleted" in put_tenant_with_the_cli(deployment, "doomed")

    with deployment.service() as server:  # which finishes the deletion before it serves
        async with admin_http(server) as http:
            r = await http.get("/admin/v1/tenants/doomed", headers=OPERATOR)
            assert r.status_code == 404
            await make_world(http, "doomed")  # the id is free again, and holds nothing
            live = await live_by_subject(http, "doomed", (f"u-{n}" for n in range(10)))
            assert set(live.values()) == {0}
            assert await all_events(http, "doomed") == []
            # The tenant beside it lost nothing.
            assert await live_credentials(http, "acme", "alice") == 1
            assert await active(reattach(http, "acme"), ["acme-1", "acme-2"]) == {
                "acme-1": False,
                "acme-2": True,
            }
            assert [e["type"] for e in await all_events(http, "acme")] == ["revoked"]


# --- credential import through the admin API ----------------------------------------------

IMPORT_LINES = {"sqlite": 20_000, "mongodb": 1_500}
IMPORT_BATCH = {"sqlite": 1_000, "mongodb": 150}
DEADLINE_S = 60.0


def lines_done(state: Path) -> int:
    try:
        done: int = json.loads(state.read_text())["line"]
    except (OSError, ValueError):  # not written yet
        return 0
    return done


def kill_once_imported(server: ServerProcess, state: Path, lines: int) -> None:
    """SIGKILL the service once the import's state shows ``lines`` lines done."""
    deadline = time.monotonic() + DEADLINE_S
    while lines_done(state) < lines:
        assert time.monotonic() < deadline, "the import made no progress"
        time.sleep(0.002)
    kill(server)


def start_import(deployment: Deployment, source: Path, url: str) -> subprocess.Popen[str]:
    batch = str(IMPORT_BATCH[deployment.store])
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "app", "credential", "import", "acme", str(source)),
            *("--batch", batch, "--no-progress", "--url", url),
        ],
        cwd=deployment.tmp,
        env={**os.environ, **deployment.env()},  # the admin key
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_an_import_rides_out_a_kill_and_restart_of_the_service(
    deployment: Deployment,
) -> None:
    """``credential import --url`` tries a batch again for some seconds while the service
    does not answer: a service killed and started again on its port meanwhile costs the
    import nothing, and the batch cut off is registered once (whole, or counted whole as
    duplicates when the kill came after its commit)."""
    total, batch = IMPORT_LINES[deployment.store], IMPORT_BATCH[deployment.store]
    source = deployment.tmp / "issued.jsonl"
    source.write_text(
        "".join(json.dumps(credential(f"imported-{i}", "importer")) + "\n" for i in range(total))
    )
    with deployment.service() as server:
        async with admin_http(server) as http:
            await make_world(http)
        importing = await asyncio.to_thread(start_import, deployment, source, server.url)
        try:
            state = Path(f"{source}.import-state")
            await asyncio.to_thread(kill_once_imported, server, state, total // 3)
            with deployment.service(port=server.port) as restarted:
                out, err = await asyncio.to_thread(importing.communicate, timeout=DEADLINE_S)
                assert importing.returncode == 0, err
                report = json.loads(out)
                async with admin_http(restarted) as http:
                    assert await live_credentials(http, "acme", "importer") == total
        finally:
            importing.kill()
    assert report["lines"] == report["registered"] + report["duplicates"] == total
    assert report["duplicates"] in (0, batch)
    assert not await asyncio.to_thread(state.exists)  # the import is complete
    print(
        f"{deployment.store}: import of {total} lines killed at {total // 3}+, "
        f"{report['registered']} registered, {report['duplicates']} duplicates"
    )
