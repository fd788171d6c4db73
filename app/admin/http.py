"""HTTP plumbing of the admin API: raw-path routing, JSON bodies, JSON responses.

Path parameters are matched on the still percent-encoded path (``raw_path``) and decoded
afterwards, so a ``client_id`` such as ``https://rp.example/app?x=1`` or a ``sub`` holding
``%2F`` stays one parameter. Every response carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Router
from starlette.types import Receive, Scope, Send

from app.errors import FieldError, InvalidRequest, NotFound, ServiceError
from app.middleware.request_context import log_fields
from app.request_body import read_body
from app.responses import NO_STORE, error_response

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Room for 10,000 credentials in one request (the revocation endpoint's limit is 16 KiB)."""


class RawPathRouter:
    """A Starlette router that matches routes on the percent-encoded request path."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.router = Router(routes=list(routes), redirect_slashes=False, default=_not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is not None:
            path = raw.split(b"?", 1)[0].decode("latin-1")
            if not path.startswith(scope.get("root_path", "")):
                path = scope.get("app_root_path", "") + path  # a proxy's prefix, stripped
            scope = {**scope, "path": path}
        await self.router(scope, receive, send)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await error_answer(scope, NotFound("no such admin resource"))(scope, receive, send)


def error_answer(scope: Scope, exc: ServiceError) -> Response:
    """The error's response; what failed (the error, its description, the field) goes
    into the request's canonical log line."""
    fields = log_fields(scope)
    fields["error"] = exc.error
    if exc.description:
        fields["error_description"] = exc.description
    if isinstance(exc, FieldError):
        fields["field"] = exc.field
    return error_response(exc)


def path_params(request: Request) -> dict[str, str]:
    """The route's parameters, percent-decoded (UTF-8)."""
    out: dict[str, str] = {}
    for name, value in request.path_params.items():
        try:
            out[name] = unquote(str(value), errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequest(f"the {name} in the path is not UTF-8") from None
    return out


async def read_json(request: Request) -> Any:
    """The request body as JSON; ``400 invalid_request`` unless it is JSON, 413 if huge."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise InvalidRequest("the body must be JSON (Content-Type: application/json)")
    return parse_json(await read_body(request, MAX_BODY_BYTES))


async def read_optional_json(request: Request) -> Any:
    """The JSON body, or ``{}`` when the request has none (no body, or an empty one); a
    body of ``null`` stays None, for the caller to refuse."""
    chunked = "transfer-encoding" in request.headers
    if not chunked and request.headers.get("content-length", "0") == "0":
        return {}
    return await read_json(request)


async def read_python(request: Request, max_bytes: int) -> bytes:
    """A plugin's source: ``Content-Type: text/x-python``, bounded (``413`` beyond)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "text/x-python":
        raise InvalidRequest("the body must be Python source (Content-Type: text/x-python)")
    return await read_body(request, max_bytes)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=NO_STORE)


def no_content() -> Response:
    return Response(status_code=204, headers=NO_STORE)
