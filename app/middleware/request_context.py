"""Request id, log context, one canonical log line per request, last-resort 500.

Endpoints add fields to the canonical line through ``scope["revocation.log"]``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.errors import ServiceError
from app.logging import log_request_line
from app.middleware.tenancy import TENANT_KEY
from app.request_ids import request_ids
from app.responses import error_response

log = structlog.get_logger("revocation.request")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def log_fields(scope: Scope) -> dict[str, Any]:
    """The dict whose entries join this request's canonical log line."""
    fields: dict[str, Any] = scope.setdefault("revocation.log", {})
    return fields


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, count: bool = True) -> None:
        self.app = app
        self.count = count
        """Whether requests feed the metrics (``serve --no-metrics``: they do not)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or request_ids.next()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        fields = log_fields(scope)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ServiceError as exc:  # raised by middleware below the router (store outage)
            if response_started:
                raise
            await error_response(exc)(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled_error", path=scope.get("path"))
            if response_started:
                raise
            await error_response(ServiceError())(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            line = {
                "method": scope["method"],
                "path": scope.get("revocation.route_path", scope.get("path")),
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                **fields,
            }
            line.setdefault("request_id", request_id)
            tenant = scope.get(TENANT_KEY)
            if tenant is not None:
                line.setdefault("tenant_id", tenant.tenant_id)
            log_request_line("revocation.request", "request", line)
            if self.count:
                metrics.observe(scope, fields, status, elapsed)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if REQUEST_ID_RE.match(text) else None
    return None
