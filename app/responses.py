"""Rendering of service errors: the OAuth JSON body, its status and headers."""

from __future__ import annotations

from starlette.responses import JSONResponse

from app.errors import ServiceError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(
        error.body(), status_code=error.status_code, headers={**NO_STORE, **error.headers}
    )
