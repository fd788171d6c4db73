"""Push receivers for ``bench_propagation.py``: one lean process serving ``--paths`` of
them (``POST /r/0`` … ``/r/{N-1}``), answering every Security Event Token ``202``.

For each SET it records, on the request's last byte, ``time.time()``, the path's number,
the SET's ``txn`` (the feed's event id) and the number at the end of its ``grant_id``
(``grant-123`` → 123; -1 without one), read from the JWS payload without verifying its
signature: verification is the tests' job, and this process must cost little CPU so
that the service gets the machine. Raw asyncio and httptools (what uvicorn uses), no
framework. Control (the benchmark's, on the same port): ``GET /healthz``, ``GET /count``
(``{"count": n, "last": t}``), ``GET /dump`` (every record since the last reset, in
columns), ``POST /reset``.

    python scripts/bench_set_receiver.py --port 8081 --paths 100
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import binascii
import json
import os
import signal
import sys
import time
from typing import Any

import httptools

ACCEPTED = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
MAX_BODY = 64 * 1024


def _response(status: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


NOT_FOUND = _response("404 Not Found")
REFUSED = _response("400 Bad Request", b'{"err":"invalid_request","description":"unreadable"}')


class Records:
    """Arrivals since the last reset, in columns (a million SETs take ~26 MB)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.receiver = array.array("H")
        self.grant = array.array("q")
        self.txn = array.array("q")
        self.time = array.array("d")
        self.unreadable = 0

    def add(self, receiver: int, body: bytes, now: float) -> bool:
        try:
            txn, grant = _read_set(body)
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
            self.unreadable += 1
            return False
        self.receiver.append(receiver)
        self.grant.append(grant)
        self.txn.append(txn)
        self.time.append(now)
        return True

    def count(self) -> dict[str, Any]:
        return {
            "count": len(self.time),
            "last": self.time[-1] if self.time else None,
            "unreadable": self.unreadable,
        }

    def dump(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver.tolist(),
            "grant": self.grant.tolist(),
            "txn": self.txn.tolist(),
            "time": self.time.tolist(),
            "unreadable": self.unreadable,
        }


def _read_set(token: bytes) -> tuple[int, int]:
    """(txn, grant number) of a compact JWS, its signature not checked."""
    payload = token.split(b".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    grant = -1
    for event in claims["events"].values():
        grant_id = event.get("grant_id") if isinstance(event, dict) else None
        if isinstance(grant_id, str):
            tail = grant_id.rsplit("-", 1)[-1]
            grant = int(tail) if tail.isdigit() else -1
    return int(claims["txn"]), grant


class Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered in order."""

    def __init__(self, records: Records, paths: int) -> None:
        self.records = records
        self.paths = paths
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.WriteTransport | None = None
        self.url = b""
        self.body: list[bytes] = []
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(_response("400 Bad Request"))
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.body, self.size = b"", [], 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= MAX_BODY:
            self.body.append(body)

    def on_message_complete(self) -> None:
        now = time.time()
        method = self.parser.get_method()
        answer = self._answer(method, self.url, b"".join(self.body), now)
        assert self.transport is not None
        self.transport.write(answer)
        if not self.parser.should_keep_alive():
            self._close()

    def _answer(self, method: bytes, url: bytes, body: bytes, now: float) -> bytes:
        if method == b"POST" and url.startswith(b"/r/"):
            number = url[3:]
            if number.isdigit() and int(number) < self.paths:
                return ACCEPTED if self.records.add(int(number), body, now) else REFUSED
            return NOT_FOUND
        if method == b"GET" and url == b"/count":
            return _response("200 OK", json.dumps(self.records.count()).encode())
        if method == b"GET" and url == b"/dump":
            return _response("200 OK", json.dumps(self.records.dump()).encode())
        if method == b"POST" and url == b"/reset":
            self.records.reset()
            return _response("200 OK", b"{}")
        if method == b"GET" and url == b"/healthz":
            return _response("200 OK", b"{}")
        return NOT_FOUND


async def serve(host: str, port: int, paths: int) -> None:
    loop = asyncio.get_running_loop()
    records = Records()
    server = await loop.create_server(
        lambda: Connection(records, paths), host, port, reuse_address=True, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--paths", type=int, default=100, help="receivers: /r/0 … /r/{N-1}")
    p.add_argument(
        "--nice",
        type=int,
        default=19,
        help="CPU priority [19]: receivers stand in for other hosts, so their CPU should "
        "not be taken from the service under test",
    )
    args = p.parse_args(argv)
    os.nice(args.nice)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.paths))
    else:
        uvloop.run(serve(args.host, args.port, args.paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
