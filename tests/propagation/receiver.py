"""A receiver of pushed Security Event Tokens (RFC 8935) for tests: a small Starlette app
on uvicorn at 127.0.0.1 (port 0), in a thread of its own so that it answers while the
test blocks (starting a service, for one). The test sets how it answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEADLINE_S = 60.0


@dataclass
class Received:
    token: str
    headers: dict[str, str]
    status: int
    event_id: int
    """The SET's ``txn``: the feed's event id."""


@dataclass
class LocalReceiver:
    fail_status: int | None = None
    """Answer every POST with this status (a failing receiver); None: ``202``."""
    reject: set[int] = field(default_factory=set)
    """Event ids whose SET is refused with an RFC 8935 error (``400``)."""
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)
    """Every POST, in arrival order, with the status it was answered."""
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def accepted(self) -> list[int]:
        """Event ids of the SETs taken (202), in arrival order (repeats included)."""
        with self.lock:
            return [r.event_id for r in self.received if r.status == 202]

    def attempts(self, event_id: int | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.received if event_id in (None, r.event_id))

    async def _post(self, request: Request) -> Response:
        body = (await request.body()).decode()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        event_id = int(jwt.decode(body, options={"verify_signature": False})["txn"])
        if self.fail_status is not None:
            status = self.fail_status
            answer: Response = Response(status_code=status)
        elif event_id in self.reject:
            status = 400
            body_json = {"err": "invalid_request", "description": "not for us"}
            answer = JSONResponse(body_json, status_code=status)
        else:
            status = 202
            answer = Response(status_code=status)
        with self.lock:
            self.received.append(Received(body, dict(request.headers), status, event_id))
        return answer


@contextmanager
def running_receiver(receiver: LocalReceiver | None = None) -> Iterator[LocalReceiver]:
    receiver = receiver or LocalReceiver()
    app = Starlette(routes=[Route("/events", receiver._post, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), "the receiver to start")
    assert server.started, "the receiver did not start"
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Block until ``condition`` holds (bounded): for tests that do not run a loop."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        time.sleep(0.01)


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Let the event loop run until ``condition`` holds (bounded)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.01)


async def until_true(
    check: Callable[[], Awaitable[bool]], what: str, deadline_s: float = DEADLINE_S
) -> None:
    """``until`` for a condition that is read from the service."""
    deadline = time.monotonic() + deadline_s
    while not await check():
        assert time.monotonic() < deadline, f"not within {deadline_s} s: {what}"
        await asyncio.sleep(0.05)
