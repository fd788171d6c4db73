"""``/healthz`` (the process is alive) and ``/readyz`` (the store answers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from app.errors import StoreUnavailable
from app.services import Services


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        await services.store.ping()
    except StoreUnavailable:
        return JSONResponse(
            {"status": "unavailable", "store": services.store.name},
            status_code=503,
            headers={"Retry-After": str(StoreUnavailable.RETRY_AFTER_S)},
        )
    return JSONResponse({"status": "ok", "store": services.store.name})
