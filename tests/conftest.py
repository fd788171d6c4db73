"""Fixtures: an opened service on a fresh store, and an HTTP client against its app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from app.application import create_app
from app.bootstrap import open_services
from app.config import ServiceConfig
from app.services import Services
from tests.store.backends import BACKENDS

OPERATOR_KEY = "test-operator-key-0123456789"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None)


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
async def services(
    request: pytest.FixtureRequest,
    config: ServiceConfig,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Services]:
    """The service on a fresh store of each backend: the HTTP suite runs against both."""
    monkeypatch.setenv("REVOCATION_ADMIN_KEY", OPERATOR_KEY)
    async with BACKENDS[request.param](tmp_path) as store:
        opened = await open_services(config, store=store)
        try:
            yield opened
        finally:
            await opened.close()


@pytest.fixture
def app(services: Services) -> Starlette:
    return create_app(services=services)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def operator() -> dict[str, str]:
    """Headers carrying the operator's admin key."""
    return {"Authorization": f"Bearer {OPERATOR_KEY}"}
