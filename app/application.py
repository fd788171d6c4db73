"""The ASGI application: routes wired in one place, middleware, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.bootstrap import open_services
from app.config import ServiceConfig
from app.errors import ServiceError
from app.housekeeping import run_housekeeping
from app.middleware.cors import CorsMiddleware
from app.middleware.direct_routes import DirectRoutesMiddleware
from app.middleware.header_limits import HeaderLimits, HeaderLimitsMiddleware
from app.middleware.request_context import RequestContextMiddleware
from app.middleware.tenancy import TenancyMiddleware
from app.propagation.delivery import Deliverer
from app.responses import NO_STORE, error_response
from app.routes import DIRECT_ROUTES, routes
from app.services import Services

HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


def create_app(
    config: ServiceConfig | None = None, *, services: Services | None = None
) -> Starlette:
    """With ``services`` the caller owns their lifetime (tests); else the lifespan opens them."""
    config = services.config if services else (config or ServiceConfig.from_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if services is not None:
            yield
            return
        opened = await open_services(config)
        app.state.services = opened
        upkeep = asyncio.create_task(run_housekeeping(opened))
        # ``serve --delivery process`` (the default) delivers in a process of its own.
        deliverer = (
            Deliverer(opened, lease_s=config.delivery_lease_s)
            if config.delivery == "workers"
            else None
        )
        if deliverer is not None:
            await deliverer.start()
        settle_heap()
        try:
            yield
        finally:
            if deliverer is not None:
                await deliverer.stop()
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await opened.close()
            await opened.store.close()

    app = Starlette(
        routes=routes(),
        middleware=middleware(config),
        lifespan=lifespan,
        exception_handlers={ServiceError: _service_error, HTTPException: _http_error},
    )
    # Never a redirect (see ``app.routes``): a path with an extra ``/`` is a 404.
    app.router.redirect_slashes = False
    if services is not None:
        app.state.services = services
    return app


def settle_heap() -> None:
    """Leave what start-up made (modules, routes, services) out of the garbage collector's
    passes from now on.

    Requests make no reference cycles (after 2,000 with the collector off, a collection
    found only the shutdown's few hundred objects), so the full passes that allocations
    trigger found nothing and walked the whole start-up heap: about 1 % of revocations
    waited 15 to 20 ms for one (p99 28 to 30 ms at 32 connections, 12.7 to 14.1 ms once
    frozen; ``docs/PERFORMANCE.md``)."""
    gc.collect()
    gc.freeze()


def middleware(config: ServiceConfig) -> list[Middleware]:
    return [
        Middleware(RequestContextMiddleware, count=config.metrics),
        # Before any work: tenant resolution, CORS, the body.
        Middleware(HeaderLimitsMiddleware, limits=HeaderLimits.of(config)),
        Middleware(TenancyMiddleware, forwarded_allow_ips=config.forwarded_allow_ips),
        Middleware(CorsMiddleware),
        Middleware(DirectRoutesMiddleware, routes=DIRECT_ROUTES),
    ]


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    body = {"error": HTTP_ERRORS.get(exc.status_code, "invalid_request")}
    return JSONResponse(
        body, status_code=exc.status_code, headers={**NO_STORE, **(exc.headers or {})}
    )
