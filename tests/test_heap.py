"""Start-up's heap is left out of the garbage collector's passes (``settle_heap``): full
passes over it were the revocation endpoint's p99 (``docs/PERFORMANCE.md``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.application import create_app
from app.config import ServiceConfig


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


async def test_the_start_up_heap_is_frozen_once_the_service_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    monkeypatch.setenv("REVOCATION_ADMIN_KEY", "heap-test-operator-key")
    app = create_app(ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None))
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://heap") as client:
            assert (await client.get("/healthz")).status_code == 200
        # The app and its services among them, not only the interpreter's modules.
        assert gc.get_freeze_count() > 10_000
        assert gc.is_tracked(app.state.services)
        assert all(o is not app.state.services for o in gc.get_objects())
