"""``serve``'s response transport: a head leaves with its body, and is never held back.

Through HTTP this shows only as fewer segments, so the invariants are checked on the
transport wrapper itself, with a recording transport: one write for head and body, a
head alone released at the end of the event loop's turn (``HEAD``, a stream's first
event), ``100 Continue`` never held, nothing lost on close.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.http_protocol import OneWriteResponses


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def wrapped() -> tuple[OneWriteResponses, Recorder]:
    recorder = Recorder()
    return OneWriteResponses(recorder, asyncio.get_running_loop()), recorder  # type: ignore[arg-type]


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    assert recorder.writes == []
    transport.write(b"{}")
    assert recorder.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert recorder.writes == [HEAD + b"{}"]


async def test_a_head_without_a_body_in_the_same_turn_leaves_at_its_end() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert recorder.writes == [HEAD]
    transport.write(b"{}")
    assert recorder.writes == [HEAD, b"{}"]


async def test_100_continue_is_never_held() -> None:
    transport, recorder = wrapped()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert recorder.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_close_sends_a_held_head_first() -> None:
    transport, recorder = wrapped()
    transport.write(HEAD)
    transport.close()
    assert recorder.writes == [HEAD] and recorder.closed and transport.is_closing()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
