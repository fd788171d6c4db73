"""Every route of the service, wired in one place."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount

from app.admin.routes import admin_routes


def routes() -> list[BaseRoute]:
    return [
        Mount("/admin/v1", routes=admin_routes()),
    ]
