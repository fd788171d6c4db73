"""One canonical log line per request; never a token, a secret or an Authorization header."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import structlog

from app.logging import configure_logging
from tests.support.world import OPERATOR, SECRET, basic, make_world


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Production logging (JSON lines) into a buffer; each call returns the new lines."""
    buffer = io.StringIO()
    configure_logging(json=True, level="info", stream=buffer)

    def read() -> list[dict[str, Any]]:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in text.splitlines()]

    yield read
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


async def test_canonical_line_and_no_secrets(
    http: httpx.AsyncClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = await make_world(http)
    await world.tenant.register(
        {"token": "very-secret-token-value", "type": "access_token", "client_id": "app"}
    )
    json_logs()  # drop set-up lines
    await world.tenant.revoke("very-secret-token-value", auth=world.app)
    failed = await world.tenant.revoke(
        "very-secret-token-value", auth=basic("app", "wrong-secret-value")
    )
    lines = json_logs()
    text = json.dumps(lines)
    for secret in ("very-secret-token-value", SECRET, "wrong-secret-value", "Basic "):
        assert secret not in text
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 2
    ok, bad = requests
    assert (ok["status"], ok["tenant_id"], ok["client_id"], ok["endpoint"]) == (
        200,
        "acme",
        "app",
        "revocation",
    )
    assert ok["request_id"] and ok["duration_ms"] >= 0
    assert bad["status"] == 401
    assert bad["client_auth_id"] == failed.json()["client_auth_id"]
    cause = next(line for line in lines if line["event"] == "client_auth_failed")
    assert cause["cause"] == "invalid client secret"
    assert cause["client_auth_id"] == bad["client_auth_id"]


async def test_a_404_for_no_tenant_names_the_host_and_path_it_saw(
    http: httpx.AsyncClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    await make_world(http, issuer="http://127.0.0.1:8000/t/acme")
    json_logs()
    r = await http.post("http://127.0.0.1:8013/t/acme/token/revoke", data={"token": "x"})
    assert r.status_code == 404
    (line,) = [line for line in json_logs() if line["event"] == "request"]
    assert (line["status"], line["path"], line["origin"]) == (
        404,
        "/t/acme/token/revoke",
        "http://127.0.0.1:8013",
    )
    assert line["error_description"] == "no tenant at this URL"


async def test_a_400_says_why(
    http: httpx.AsyncClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = await make_world(http)
    json_logs()
    no_token = await world.tenant.revoke(None, auth=world.app, token_type_hint="access_token")
    assert no_token.status_code == 400
    r = await http.post("/token/revoke", headers={"Tenant-ID": "nobody"})
    assert r.status_code == 400
    first, second = [line for line in json_logs() if line["event"] == "request"]
    assert (first["error"], first["error_description"]) == (
        "invalid_request",
        no_token.json()["error_description"],
    )
    assert (second["error"], second["error_description"]) == ("invalid_request", "unknown tenant")


async def test_an_admin_api_error_says_what_failed(
    http: httpx.AsyncClient, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    world = await make_world(http)
    json_logs()
    r = await http.patch(
        "/admin/v1/tenants/acme", json={"revocation": {"cascade": "all"}}, headers=OPERATOR
    )
    assert r.status_code == 400
    r = await http.get("/admin/v1/tenants/acme/clients/nobody", headers=OPERATOR)
    assert r.status_code == 404
    r = await http.get("/admin/v1/nothing-here", headers=OPERATOR)
    assert r.status_code == 404
    bad, missing, nowhere = [line for line in json_logs() if line["event"] == "request"]
    assert (bad["status"], bad["error"], bad["field"]) == (
        400,
        "invalid_request",
        "revocation.cascade",
    )
    assert bad["error_description"].startswith("must be one of")
    assert (missing["error"], missing["error_description"]) == ("not_found", "no such client")
    assert nowhere["error_description"] == "no such admin resource"
    assert world.tenant.tenant_id == bad["tenant_id"]
