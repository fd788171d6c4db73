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
from tests.support.world import SECRET, basic, make_world


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
