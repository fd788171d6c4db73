"""Odd bytes in request headers: each gets its OAuth error, never a 500, and changes nothing.

Headers are sent as raw bytes (httpx passes bytes through untouched), as an attacker
would send them; Starlette reads header values as Latin-1, so any byte is a character.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from structlog.testing import capture_logs

from tests.support.world import OPERATOR, SECRET, World, basic, make_world

ENDPOINTS = ("/token/revoke", "/token/introspect")
FORM = (b"content-type", b"application/x-www-form-urlencoded")
TENANT = (b"tenant-id", b"acme")
# The tenant's issuer URL as a request reaches it: https through the trusted proxy.
URL_FORM = {b"host": b"auth.example.com", b"x-forwarded-proto": b"https"}


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


@pytest.fixture
async def world(http: httpx.AsyncClient) -> World:
    world = await make_world(http, cors={"allowed_origins": ["https://app.example"]})
    await world.tenant.register({"token": "live", "type": "access_token", "client_id": "app"})
    return world


async def post(
    http: httpx.AsyncClient, path: str, headers: list[tuple[bytes, bytes]]
) -> httpx.Response:
    return await http.post(path, content=b"token=live", headers=headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(b"\xff\xfe", id="non-ASCII bytes"),
        pytest.param(b"YXBw\xe9", id="base64 with a non-ASCII byte"),
        pytest.param("app:" + SECRET + "é", id="UTF-8 text, not base64"),
        pytest.param(b64(b"\xff\xfe:\xfd"), id="base64 of invalid UTF-8"),
        pytest.param(b64(b"app"), id="no colon"),
        pytest.param(b64(b"app%ff:" + SECRET.encode()), id="percent-encoding of invalid UTF-8"),
        pytest.param(b64(b"app:%C3"), id="truncated percent-encoded UTF-8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"%%%", id="not base64"),
    ],
)
async def test_malformed_basic_is_invalid_client(
    http: httpx.AsyncClient, world: World, endpoint: str, credentials: bytes | str
) -> None:
    raw = credentials.encode("utf-8") if isinstance(credentials, str) else credentials
    r = await post(http, endpoint, [TENANT, FORM, (b"authorization", b"Basic " + raw)])
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert r.json()["client_auth_id"]
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert await world.active("live")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"\xff\xfe", b"Basic\xa0YXBw"])
async def test_other_odd_authorization_is_invalid_client(
    http: httpx.AsyncClient, world: World, endpoint: str, value: bytes
) -> None:
    r = await post(http, endpoint, [TENANT, FORM, (b"authorization", value)])
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client"
    assert "www-authenticate" not in r.headers  # Basic was not tried
    assert await world.active("live")


async def test_percent_encoded_basic_credentials_authenticate(
    http: httpx.AsyncClient, world: World
) -> None:
    """RFC 6749 section 2.3.1: both parts form-urlencoded before base64, UTF-8 included."""
    client_id, secret = "app é+:/", "s3cret é+%:" + "x" * 16
    await world.tenant.client(client_id, secret=secret)
    await world.tenant.register({"token": "mine", "type": "access_token", "client_id": client_id})
    r = await world.tenant.revoke("mine", auth=basic(client_id, secret))
    assert r.status_code == 200, r.text
    assert not await world.active("mine")


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ((b"host", b"auth.example.com"), 200),  # the control: the issuer URL matches
        ((b"tenant-id", b"acm\xe9"), 400),
        ((b"tenant-id", b""), 400),
        ((b"issuer", b"https://auth.example.com/t/acm\xe9"), 400),
        ((b"issuer", b"http://[::1"), 400),
        ((b"issuer", b"https://auth.example.com:99999/t/acme"), 400),
        ((b"host", b"\xff\xfe"), 404),
        ((b"host", b"[::1"), 404),
        ((b"host", b"auth.example.com:99999"), 404),
        ((b"x-forwarded-host", b"[::1"), 404),
        ((b"x-forwarded-proto", b"\xff"), 404),
    ],
)
async def test_odd_tenant_naming_headers_are_refused(
    http: httpx.AsyncClient, world: World, header: tuple[bytes, bytes], status: int
) -> None:
    named = {**URL_FORM, header[0]: header[1]}
    auth = (b"authorization", basic("app", SECRET)["Authorization"].encode())
    r = await http.post(
        "/t/acme/token/revoke", content=b"token=x", headers=[FORM, auth, *named.items()]
    )
    assert r.status_code == status, r.text
    if status != 200:
        assert r.json()["error"] in ("invalid_request", "not_found")
    assert await world.active("live")


@pytest.mark.parametrize(
    "header",
    [
        (b"content-type", b"application/x-www-form-urlencoded; charset=\xff"),
        (b"content-type", b"\xff\xfe"),
    ],
)
async def test_odd_content_type_is_invalid_request(
    http: httpx.AsyncClient, world: World, header: tuple[bytes, bytes]
) -> None:
    auth = (b"authorization", basic("app", SECRET)["Authorization"].encode())
    r = await post(http, "/token/revoke", [TENANT, auth, header])
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert await world.active("live")


@pytest.mark.parametrize(
    "origin", [b"https://\xff\xfe", b"https://[::1", b"https://app.example:99999", b"null"]
)
async def test_odd_origin_gets_no_cors_and_no_error(
    http: httpx.AsyncClient, world: World, origin: bytes
) -> None:
    headers = [*URL_FORM.items(), (b"origin", origin), (b"access-control-request-method", b"POST")]
    r = await http.options("/t/acme/token/revoke", headers=headers)
    assert r.status_code == 403, r.text
    assert "access-control-allow-origin" not in r.headers
    auth = (b"authorization", basic("app", SECRET)["Authorization"].encode())
    r = await post(http, "/token/revoke", [TENANT, FORM, auth, (b"origin", origin)])
    assert r.status_code == 200, r.text
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "value", [b"Bearer \xff\xfe", OPERATOR["Authorization"].encode() + b"\xe9", b"\xff"]
)
async def test_non_ascii_admin_bearer_is_unauthorized(
    http: httpx.AsyncClient, world: World, value: bytes
) -> None:
    r = await http.get("/admin/v1/tenants", headers=[(b"authorization", value)])
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"].startswith("Bearer realm=")


async def test_the_log_names_the_problem_never_the_bytes(
    http: httpx.AsyncClient, world: World
) -> None:
    secret = "sécret-" + "z" * 20
    header = (b"authorization", b"Basic " + f"app:{secret}".encode())
    with capture_logs() as logs:
        r = await post(http, "/token/revoke", [TENANT, FORM, header])
    assert r.status_code == 401, r.text
    (failed,) = [e for e in logs if e["event"] == "client_auth_failed"]
    assert failed["cause"] == "malformed Basic credentials: not ASCII"
    assert "z" * 20 not in repr(logs)
