"""An upload through one worker is in force on another worker of the same embedded store
at its next request (the MongoDB case, across instances, is in test_multi_instance)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.application import create_app
from app.bootstrap import open_services
from app.config import ServiceConfig
from app.store.sqlite.store import SqliteStore
from tests.support.world import OPERATOR, make_world

RESPONSE = b"""
def response_mapping(context, response):
    return {"attributes": {"version": %d}}
"""


async def test_an_upload_is_seen_by_another_worker_at_its_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVOCATION_ADMIN_KEY", OPERATOR["Authorization"].removeprefix("Bearer "))
    config = ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None)
    stores = [SqliteStore(tmp_path / "shared.sqlite3") for _ in range(2)]
    for store in stores:
        await store.open()
    services = [await open_services(config, store=store) for store in stores]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(services=s)), base_url="http://w"
        )
        for s in services
    ]
    try:
        one, two = clients
        world = await make_world(one)
        headers = {**OPERATOR, "Content-Type": "text/x-python"}
        for version in (1, 2, 3):
            r = await one.put(
                "/admin/v1/tenants/acme/plugins/stamp", content=RESPONSE % version, headers=headers
            )
            assert r.status_code == 201
            if version == 1:
                await world.tenant.patch({"plugins": {"enabled": [{"name": "stamp"}]}})
            r = await two.post(
                "/token/revoke", data={"token": "x"}, headers={**world.tenant.headers, **world.app}
            )
            assert r.json() == {"version": version}
        r = await one.post(
            "/admin/v1/tenants/acme/plugins/stamp/versions/1/activate", headers=OPERATOR
        )
        assert r.status_code == 200
        r = await two.post(
            "/token/revoke", data={"token": "x"}, headers={**world.tenant.headers, **world.app}
        )
        assert r.json() == {"version": 1}
    finally:
        for client in clients:
            await client.aclose()
        for s in services:
            await s.close()
        for store in stores:
            await store.close()
