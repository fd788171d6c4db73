"""Bounds on a request's head (contract section 7), as pure ASGI middleware.

The head is the request target (path and query) and the header fields: at most
``max_bytes`` of target, names and values together, and at most ``max_count`` fields.
Over either, the answer is ``431 Request Header Fields Too Large`` with an OAuth error
body, before the tenant is resolved or the body read.

``serve`` enforces the same limits in the server itself (``app.http_protocol``), so that
a huge header is refused while it arrives instead of once it is all buffered; this
middleware is the same rule for any other ASGI server the app runs under.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import ServiceConfig
from app.errors import InvalidRequest
from app.middleware.request_context import log_fields
from app.responses import error_response


class HeadersTooLarge(InvalidRequest):
    status_code = 431


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    max_bytes: int
    """Request target plus every header's name and value, in bytes."""
    max_count: int
    """Header fields (a repeated name counts each time)."""

    @classmethod
    def of(cls, config: ServiceConfig) -> HeaderLimits:
        return cls(config.max_header_bytes, config.max_headers)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_count < 1:
            raise ValueError("header limits must be positive")

    def too_many(self) -> str:
        return f"the request has more than {self.max_count} header fields"

    def too_large(self) -> str:
        return f"the request's target and header fields exceed {self.max_bytes} bytes"

    def refusal(self, target_bytes: int, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """Why a head of this size is refused; None when it is within the limits."""
        if len(headers) > self.max_count:
            return self.too_many()
        size = target_bytes
        for name, value in headers:
            size += len(name) + len(value)
        return self.too_large() if size > self.max_bytes else None


class HeaderLimitsMiddleware:
    def __init__(self, app: ASGIApp, *, limits: HeaderLimits) -> None:
        self.app = app
        self.limits = limits

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: the app's own coroutine is handed back, so this middleware adds
        # no frame that every resumption of a request (each store wait) passes through.
        if scope["type"] == "http":
            target = scope.get("raw_path") or scope["path"].encode()
            target_bytes = len(target) + len(scope.get("query_string", b""))
            reason = self.limits.refusal(target_bytes, scope["headers"])
            if reason is not None:
                log_fields(scope).update(error=HeadersTooLarge.error, error_description=reason)
                return error_response(HeadersTooLarge(reason))(scope, receive, send)
        return self.app(scope, receive, send)
