"""A stream of requests from several workers, and a ``kill -9`` of the service once a
number of them were acknowledged: the kill lands while the others are in flight, at an
instant no test chooses, so what the tests check afterwards must hold whatever it hit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx

from tests.support.server import ServerProcess, kill


@dataclass
class Race:
    acknowledged: list[int] = field(default_factory=list)
    """Items answered 2xx before the kill: the service promised these."""
    cut_off: list[int] = field(default_factory=list)
    """Items sent but never answered: in flight when the service died."""

    @property
    def sent(self) -> list[int]:
        return self.acknowledged + self.cut_off


async def kill_mid_stream(
    server: ServerProcess,
    send: Callable[[int], Awaitable[httpx.Response]],
    items: Sequence[int],
    *,
    workers: int,
    kill_after: int,
) -> Race:
    """Send ``items`` (each once) from ``workers`` concurrent workers; SIGKILL the
    service as soon as ``kill_after`` of them were acknowledged."""
    race = Race()
    queue = list(reversed(items))
    killed = False

    async def worker() -> None:
        nonlocal killed
        while queue and not killed:
            item = queue.pop()
            try:
                response = await send(item)
            except httpx.TransportError:
                assert killed, f"item {item}: the connection failed before the kill"
                race.cut_off.append(item)
                continue
            assert response.is_success, f"item {item}: {response.status_code} {response.text}"
            race.acknowledged.append(item)
            if len(race.acknowledged) >= kill_after and not killed:
                killed = True
                kill(server)

    await asyncio.gather(*(worker() for _ in range(workers)))
    assert killed, f"only {len(race.acknowledged)} acknowledged: more items needed"
    # ``cut_off`` is usually not empty, but may be: on a loaded machine the answers to
    # every request in flight can already sit in this process's socket buffers when the
    # kill lands. Such a run checks only that what was acknowledged held.
    return race
