"""The disk fills while revocations are being written (embedded store).

A file-size limit on the service process (``RLIMIT_FSIZE``, set on the running process
with ``prlimit``) stands in for the full disk: a write past it fails with ``EFBIG``, as
one past the end of a full disk fails with ``ENOSPC`` (Python ignores ``SIGXFSZ``, so the
write fails instead of killing the process). The limit leaves the WAL a little room, so a
few commits go through and then one meets the full disk half-way through its pages;
raising the limit again is the operator freeing space. The service's log goes through a
pipe, as to a supervisor, so the limit is on the store's files alone.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sqlite3
from pathlib import Path

import httpx

from tests.faults.admin_views import active, reattach
from tests.faults.deployment import Deployment
from tests.support.world import World, make_world

TOKENS = 300
BEFORE, DURING = range(0, 100), range(100, 200)
WAL_ROOM = 128 * 1024
"""Room left for the WAL to grow: some commits (a revocation's appends some 4 KiB pages),
then one cut off half-way. The WAL only grows meanwhile: it starts empty with the service
and is far from the 1,000 pages after which SQLite checkpoints it and writes it again
from its start."""


def ignores_sigxfsz(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:"))[7:], 16)
    return bool(ignored & (1 << (signal.SIGXFSZ - 1)))


def set_file_size_limit(pid: int, soft: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def fill_the_disk(pid: int, wal: Path) -> None:
    """From now on the WAL may grow by ``WAL_ROOM`` bytes."""
    set_file_size_limit(pid, wal.stat().st_size + WAL_ROOM)


def tokens(numbers: range) -> list[str]:
    return [f"tok-{n}" for n in numbers]


async def revoke_all(world: World, numbers: range) -> dict[str, httpx.Response]:
    """Revoke the tokens, a few at a time (several commits, some sharing one)."""
    at_once = asyncio.Semaphore(4)

    async def revoke(token: str) -> tuple[str, httpx.Response]:
        async with at_once:
            return token, await world.tenant.revoke(token, auth=world.app)

    return dict(await asyncio.gather(*(revoke(token) for token in tokens(numbers))))


def at_rest(database: Path) -> tuple[bool, str]:
    """After a clean stop: whether a WAL is left (the last connection checkpoints it into
    the database and removes it), and SQLite's integrity check."""
    wal_left = Path(f"{database}-wal").exists()
    with sqlite3.connect(database) as conn:
        integrity: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return wal_left, integrity


async def test_disk_full_while_revoking(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    wal = Path(f"{deployment.sqlite_file}-wal")
    with deployment.service(pipe_log=True) as server:
        pid = server.process.pid
        assert ignores_sigxfsz(pid)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            world = await make_world(http)
            await world.tenant.register(
                *(
                    {"token": token, "type": "access_token", "client_id": "app"}
                    for token in tokens(range(TOKENS))
                )
            )
            before = await revoke_all(world, BEFORE)
            assert {r.status_code for r in before.values()} == {200}

            fill_the_disk(pid, wal)
            log_mark = len(server.log())
            during = await revoke_all(world, DURING)
            refused = [token for token, r in during.items() if r.status_code == 503]
            acknowledged = [token for token, r in during.items() if r.status_code == 200]
            assert len(refused) + len(acknowledged) == len(DURING)
            assert len(refused) > len(DURING) // 2, "the disk never filled up"
            for token in refused:
                r = during[token]
                assert r.json() == {"error": "temporarily_unavailable"}  # no trace, no detail
                assert int(r.headers["Retry-After"]) > 0
            # Reads go on; a refused revocation changed nothing, an acknowledged one holds.
            seen = await active(world, tokens(range(TOKENS)))
            assert [t for t, live in seen.items() if live] == [
                *refused,
                *tokens(range(DURING.stop, TOKENS)),
            ]
            outage_log = server.log()[log_mark:]

            set_file_size_limit(pid, resource.RLIM_INFINITY)  # space again, no restart
            again = await revoke_all(world, DURING)
            assert {r.status_code for r in again.values()} == {200}
            seen = await active(world, tokens(range(TOKENS)))
            assert [t for t, live in seen.items() if live] == tokens(range(DURING.stop, TOKENS))

    # One line for each refusal, saying what failed; no trace, no token, nothing else.
    lines = [json.loads(line) for line in outage_log.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line.get("status") == 503]
    assert len(failed) == len(refused)
    assert {(line["error"], line["error_description"]) for line in failed} == {
        ("temporarily_unavailable", "the SQLite store is unavailable (SQLITE_IOERR_WRITE)")
    }
    assert [line["event"] for line in lines if line["level"] != "info"] == []
    assert "Traceback" not in outage_log
    assert not [token for token in tokens(DURING) if token in outage_log]
    print(
        f"disk full: {len(acknowledged)} revocations acknowledged, then {len(refused)} "
        f"refused, the slowest in {max(line['duration_ms'] for line in failed):.1f} ms"
    )

    assert at_rest(deployment.sqlite_file) == (False, "ok")
    with deployment.service() as server:  # and after a restart everything is still there
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            seen = await active(reattach(http, "acme"), tokens(range(TOKENS)))
            assert [t for t, live in seen.items() if live] == tokens(range(DURING.stop, TOKENS))
