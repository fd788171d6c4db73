"""Bounds on a request's head in the app itself (contract section 7), for any ASGI server.

The limits here are small, set through ``ServiceConfig`` as ``serve`` sets them; a head
exactly at a limit passes, one byte or one field more is ``431`` before anything else.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from app.config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, ServiceConfig
from tests.support.world import World, make_world

MAX_BYTES = 4096
MAX_HEADERS = 20


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        data_dir=tmp_path / "data",
        tenants_dir=None,
        max_header_bytes=MAX_BYTES,
        max_headers=MAX_HEADERS,
    )


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http)
    await world.tenant.register({"token": "live", "type": "access_token", "client_id": "app"})
    return world


def head_size(request: httpx.Request) -> int:
    """What the limit counts, as the ASGI scope will have it."""
    raw_path, _, query = request.url.raw_path.partition(b"?")
    return len(raw_path) + len(query) + sum(len(n) + len(v) for n, v in request.headers.raw)


def revocation(http: httpx.AsyncClient, world: World, size: int) -> httpx.Request:
    """A revocation of ``live`` whose head is ``size`` bytes, padded with ``X-Pad``."""
    headers = {**world.tenant.headers, **world.app, "X-Pad": ""}
    request = http.build_request("POST", "/token/revoke", data={"token": "live"}, headers=headers)
    pad = size - head_size(request)
    assert pad >= 0
    request.headers["X-Pad"] = "p" * pad
    assert head_size(request) == size
    return request


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 431, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["error_description"]
    assert r.headers["cache-control"] == "no-store"


async def test_a_head_at_the_limit_passes_and_one_byte_more_is_431(
    http: httpx.AsyncClient, world: World
) -> None:
    r = await http.send(revocation(http, world, MAX_BYTES + 1))
    assert_refused(r)
    assert str(MAX_BYTES) in r.json()["error_description"]
    assert await world.active("live")  # nothing was revoked
    r = await http.send(revocation(http, world, MAX_BYTES))
    assert r.status_code == 200, r.text
    assert not await world.active("live")


async def test_the_target_counts(http: httpx.AsyncClient, world: World) -> None:
    r = await http.get("/healthz", params={"q": "x" * MAX_BYTES})
    assert_refused(r)
    r = await http.get("/healthz", params={"q": "x" * (MAX_BYTES // 2)})
    assert r.status_code == 200, r.text


async def test_too_many_fields_is_431(http: httpx.AsyncClient, world: World) -> None:
    request = http.build_request("GET", "/healthz")
    room = MAX_HEADERS - len(request.headers.raw)
    # A repeated name counts each time.
    fields = [(b"x-same", b"1")] * room
    r = await http.get("/healthz", headers=fields)
    assert r.status_code == 200, r.text
    r = await http.get("/healthz", headers=[*fields, (b"x-same", b"1")])
    assert_refused(r)
    assert str(MAX_HEADERS) in r.json()["error_description"]


async def test_refused_before_the_tenant_and_the_body(
    http: httpx.AsyncClient, world: World
) -> None:
    """An unknown tenant would be 400 and a body over 16 KiB 413: the head comes first."""
    big = {"Tenant-ID": "nobody", "X-Pad": "p" * MAX_BYTES}
    r = await http.post("/token/revoke", content=b"token=" + b"x" * 100_000, headers=big)
    assert_refused(r)
    big = {"X-Pad": "p" * MAX_BYTES}
    r = await http.get("/admin/v1/tenants", headers=big)
    assert_refused(r)


async def test_the_refusal_is_logged(http: httpx.AsyncClient, world: World) -> None:
    with capture_logs() as logs:
        r = await http.get("/healthz", headers={"X-Pad": "p" * MAX_BYTES})
    assert_refused(r)
    (line,) = [e for e in logs if e["event"] == "request"]
    assert line["status"] == 431
    assert line["error"] == "invalid_request"
    assert "p" * 100 not in repr(line)  # a header's value is never logged


def test_defaults() -> None:
    """``serve --max-header-bytes`` [32768] and ``--max-headers`` [100]."""
    config = ServiceConfig()
    assert (config.max_header_bytes, config.max_headers) == (32 * 1024, 100)
    assert (DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS) == (32 * 1024, 100)
