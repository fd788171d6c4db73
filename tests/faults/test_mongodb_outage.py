"""MongoDB paused (``SIGSTOP``) and then killed (``SIGKILL``) under a steady load of
revocations and introspections.

While it is out, every request is answered ``503 temporarily_unavailable`` within the
operation timeout (``app.store.mongodb.deadlines``), including requests whose connection
to the paused server was already open, and ``/readyz`` is ``503``. Once it is back (same
port, same storage), the service recovers without a restart: requests succeed, the
change stream resumes (a configuration change made elsewhere is in force at once), and
no acknowledged revocation was lost.

No request may take ``HANG_S``: its HTTP client gives up then and fails the test. That
is a bound, not a speed: ``HANG_S`` is well above the service's bound (2 s per
operation, plus 0.5 s to abort a transaction) and well below the 30 s a request waited
on a paused server before (``socketTimeoutMS``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from app.store.mongodb.abandoned_sessions import AbandonedSessions
from app.store.mongodb.store import client_options
from app.store.mongodb.transactions import MAJORITY, run_in_transaction
from tests.faults.deployment import Deployment
from tests.support.secantus import ServerProcess as MongoProcess
from tests.support.world import World, make_world

HANG_S = 8.0
TOKENS = 600
WORKERS = 6
DEADLINE_S = 60.0
"""Bound of each wait for a phase: generous, since it only matters on failure."""
PROPAGATION_DEADLINE_S = 10.0
"""Far below the 30 s periodic refresh: seeing a change within it proves the change
stream carried it."""


@dataclass
class Answer:
    worker: int
    started: float
    took: float
    endpoint: str
    token: str
    status: int
    body: bytes
    retry_after: str | None


@dataclass
class Load:
    """Revocations of fresh tokens and introspections of revoked ones, from several
    workers, until stopped."""

    world: World
    answers: list[Answer] = field(default_factory=list)
    stopping: bool = False
    next_token: int = 0

    def acknowledged(self) -> list[str]:
        return [a.token for a in self.answers if a.endpoint == "revoke" and a.status == 200]

    def since(self, at: float, status: int) -> int:
        return sum(a.started >= at and a.status == status for a in self.answers)

    def everyone_refused_since(self, at: float) -> bool:
        """Every worker had a ``503`` answered after ``at``: to a request sent since, or
        to one that was waiting on the database at that instant."""
        refused = {a.worker for a in self.answers if a.started + a.took > at and a.status == 503}
        return len(refused) == WORKERS

    async def worker(self, me: int) -> None:
        while not self.stopping:
            token = f"tok-{self.next_token}"
            self.next_token += 1
            assert self.next_token < TOKENS, "more tokens needed"
            await self.send(me, "revoke", token)
            revoked = self.acknowledged()
            if revoked:
                await self.send(me, "introspect", revoked[len(revoked) // 2])

    async def send(self, me: int, endpoint: str, token: str) -> None:
        started = time.monotonic()
        auth = self.world.app if endpoint == "revoke" else self.world.rs
        r = await self.world.tenant.http.post(
            f"/token/{endpoint}",
            data={"token": token},
            headers={**self.world.tenant.headers, **auth},
        )
        took = time.monotonic() - started
        answer = Answer(
            me,
            started,
            took,
            endpoint,
            token,
            r.status_code,
            r.content,
            r.headers.get("retry-after"),
        )
        self.answers.append(answer)
        if r.status_code == 503:
            await asyncio.sleep(0.05)  # a client honouring Retry-After would wait longer

    async def until(self, condition: Callable[[], bool], what: str) -> float:
        """Let the load run until ``condition()``; how long that took."""
        started = time.monotonic()
        while not condition():
            assert time.monotonic() - started < DEADLINE_S, f"not within {DEADLINE_S} s: {what}"
            await asyncio.sleep(0.01)
        return time.monotonic() - started


async def readyz(http: httpx.AsyncClient) -> int:
    return (await http.get("/readyz")).status_code


def disable_revocation_elsewhere(deployment: Deployment, issuer: str) -> None:
    """A configuration change made by another process (the admin command)."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "app", "tenant", "put", "acme"),
            *("--from-json", json.dumps({"issuer": issuer, "revocation": {"enabled": False}})),
            *deployment.store_args(),
        ],
        cwd=deployment.tmp,
        env={**os.environ, **deployment.env()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def test_mongodb_paused_then_killed_under_load(mongo: MongoProcess) -> None:
    deployment = Deployment(mongo.storage_path.parent, mongo=mongo)
    figures: dict[str, float] = {}
    with deployment.service() as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=HANG_S) as http:
            world = await make_world(http)
            await world.tenant.register(
                *(
                    {"token": f"tok-{n}", "type": "access_token", "client_id": "app"}
                    for n in range(TOKENS)
                )
            )
            load = Load(world)
            workers = asyncio.gather(*(load.worker(me) for me in range(WORKERS)))
            try:
                await load.until(lambda: len(load.acknowledged()) >= 30, "a first load")

                paused = time.monotonic()
                mongo.pause()
                figures["paused: every worker refused"] = await load.until(
                    lambda: load.everyone_refused_since(paused), "503s while paused"
                )
                assert await readyz(http) == 503
                resumed = time.monotonic()
                mongo.resume()
                figures["resumed: first 200"] = await load.until(
                    lambda: load.since(resumed, 200) > 0, "recovery after SIGCONT"
                )
                assert await readyz(http) == 200
                before_kill = len(load.acknowledged())
                await load.until(lambda: len(load.acknowledged()) >= before_kill + 30, "load")

                killed = time.monotonic()
                mongo.kill()
                figures["killed: every worker refused"] = await load.until(
                    lambda: load.everyone_refused_since(killed), "503s while down"
                )
                assert await readyz(http) == 503
                await asyncio.to_thread(mongo.start)  # same port, same storage
                restarted = time.monotonic()
                figures["restarted: first 200"] = await load.until(
                    lambda: load.since(restarted, 200) > 0, "recovery after the restart"
                )
            finally:
                load.stopping = True
                await workers
            assert await readyz(http) == 200

            assert {a.status for a in load.answers} == {200, 503}
            for a in load.answers:
                if a.status == 503:
                    assert json.loads(a.body) == {"error": "temporarily_unavailable"}
                    assert a.retry_after is not None and int(a.retry_after) > 0
            acknowledged = load.acknowledged()
            for token in acknowledged:
                r = await http.post(
                    "/token/introspect",
                    data={"token": token},
                    headers={**world.tenant.headers, **world.rs},
                )
                assert r.json() == {"active": False}, token

            # The change stream resumed: a change made elsewhere is in force at once.
            disable_revocation_elsewhere(deployment, world.tenant.issuer)
            started = time.monotonic()
            while (await world.tenant.revoke("tok-0", auth=world.app)).status_code != 404:
                assert time.monotonic() - started < PROPAGATION_DEADLINE_S, "change not seen"
                await asyncio.sleep(0.02)
            figures["change made elsewhere seen after"] = time.monotonic() - started

    outage = [a for a in load.answers if a.status == 503]
    figures["slowest 503"] = max(a.took for a in outage)
    figures["slowest answer"] = max(a.took for a in load.answers)
    print(
        f"{len(load.answers)} answers, {len(acknowledged)} revocations acknowledged "
        f"(none lost), {len(outage)} answered 503;",
        ", ".join(f"{name}: {value:.2f} s" for name, value in figures.items()),
    )


async def test_a_transaction_cut_off_by_a_stalled_server_does_not_hold_its_documents(
    tmp_path: Path,
) -> None:
    """The server keeps an abandoned transaction, and what it wrote locked, for its
    ``transactionLifetimeLimitSeconds`` (60 s here, MongoDB's default): longer than the
    10 s a transaction retries a write conflict. So the next transaction to meet it kills
    it, and succeeds at once."""
    server = MongoProcess(tmp_path / "mongo", sync_on_commit=True)  # 60 s lifetime
    server.start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri,
        **client_options(server.uri),  # the service's timeouts
    )
    try:
        counters = client.get_database("faults", write_concern=MAJORITY)["counters"]
        await counters.insert_one({"_id": "events", "n": 0})
        abandoned = AbandonedSessions()

        async def stalls(session: AsyncClientSession) -> None:
            await counters.update_one({"_id": "events"}, {"$inc": {"n": 1}}, session=session)
            server.pause()
            await counters.update_one({"_id": "events"}, {"$inc": {"n": 1}}, session=session)

        with pytest.raises(PyMongoError) as cut_off:
            await run_in_transaction(client, stalls, retry_for_s=10, abandoned=abandoned)
        assert cut_off.value.timeout
        server.resume()
        assert len(abandoned) == 1

        async def increments(session: AsyncClientSession) -> None:
            await counters.update_one({"_id": "events"}, {"$inc": {"n": 10}}, session=session)

        await run_in_transaction(client, increments, retry_for_s=10, abandoned=abandoned)
        assert await counters.find_one({"_id": "events"}) == {"_id": "events", "n": 10}
        assert len(abandoned) == 0
    finally:
        await client.close()
        server.stop()
