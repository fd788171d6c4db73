"""/healthz and /readyz."""

from __future__ import annotations

import httpx
import pytest

from app.errors import StoreUnavailable
from app.services import Services


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    r = await http.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_readyz_fails_when_the_store_does_not_answer(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> None:
        raise StoreUnavailable("gone")

    monkeypatch.setattr(services.store, "ping", down)
    r = await http.get("/readyz")
    assert r.status_code == 503
    assert "retry-after" in r.headers
