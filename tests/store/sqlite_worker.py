"""A child process for the two-process SQLite test: registers and revokes its own tokens."""

from __future__ import annotations

import asyncio
from multiprocessing.synchronize import Barrier
from pathlib import Path

from app.store.sqlite.store import SqliteStore
from tests.store.records import add_tenant, credential, revoke_token


async def _revoke_many(path: Path, prefix: str, n: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await add_tenant(store, "acme")  # both processes: the second keeps the first's
        tokens = [f"{prefix}{i}" for i in range(n)]
        outcome = await store.register_credentials("acme", [credential("acme", t) for t in tokens])
        assert outcome.registered == n
        # Half one at a time (a lock hand-over each), half at once (group commits).
        for token in tokens[: n // 2]:
            assert (await store.apply_revocation("acme", revoke_token(token))).count == 1
        outcomes = await asyncio.gather(
            *(store.apply_revocation("acme", revoke_token(t)) for t in tokens[n // 2 :])
        )
        assert all(o.applied and o.count == 1 for o in outcomes)
    finally:
        await store.close()


def revoke_many(path: str, prefix: str, n: int, start: Barrier) -> None:
    start.wait()  # both processes open the fresh file at once
    asyncio.run(_revoke_many(Path(path), prefix, n))
