"""The ASGI application: routes wired in one place, middleware, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from app.bootstrap import open_services
from app.config import ServiceConfig
from app.routes import routes
from app.services import Services


def create_app(config: ServiceConfig | None = None, *, services: Services | None = None) -> Starlette:
    """With ``services`` the caller owns their lifetime (tests); else the lifespan opens them."""
    config = services.config if services else (config or ServiceConfig.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        opened = await open_services(config)
        app.state.services = opened
        try:
            yield
        finally:
            await opened.store.close()

    app = Starlette(routes=routes(), middleware=middleware(config), lifespan=lifespan)
    if services is not None:
        app.state.services = services
    return app


def middleware(config: ServiceConfig) -> list[Middleware]:
    return []
