"""Errors as classes carrying their OAuth ``error`` code and HTTP status.

Raised anywhere below an endpoint, rendered in one place (``app.responses``).
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error the service answers with."""

    status_code: int = 500
    error: str = "server_error"

    def __init__(self, description: str | None = None, **extra: Any) -> None:
        super().__init__(description or self.error)
        self.description = description
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        out.update(self.extra)
        return out


class InvalidRequest(ServiceError):
    status_code = 400
    error = "invalid_request"


class RequestTooLarge(InvalidRequest):
    status_code = 413


class UnsupportedTokenType(ServiceError):
    status_code = 400
    error = "unsupported_token_type"


class InvalidClient(ServiceError):
    """Client authentication failed. ``cause`` is logged, never sent."""

    status_code = 401
    error = "invalid_client"
    DESCRIPTION = (
        "Invalid client: possible causes are a missing or unknown client_id, missing client "
        "authentication, an invalid client secret or assertion, a disabled client, or a "
        "client authentication method not allowed for this client"
    )

    def __init__(self, cause: str, *, client_id: str | None = None, basic: bool = False) -> None:
        super().__init__(self.DESCRIPTION)
        self.cause = cause
        self.client_id = client_id
        self.basic = basic


class TooManyFailedAuthentications(ServiceError):
    """Too many failed client authentications from this source address (contract
    section 7): ``429`` with ``Retry-After``, answered before any credential is checked."""

    status_code = 429
    error = "invalid_client"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many failed client authentications from this address: try again later"
        )
        self.headers["Retry-After"] = str(retry_after_s)


class InsufficientScope(ServiceError):
    status_code = 403
    error = "insufficient_scope"


class Forbidden(ServiceError):
    status_code = 403
    error = "forbidden"


class Unauthorized(ServiceError):
    """Admin API: no or bad key."""

    status_code = 401
    error = "unauthorized"


class NotFound(ServiceError):
    status_code = 404
    error = "not_found"


class Conflict(ServiceError):
    status_code = 409
    error = "conflict"


class NotAcceptable(ServiceError):
    """No representation the request's ``Accept`` allows."""

    status_code = 406
    error = "not_acceptable"


class NotSupported(ServiceError):
    """A request feature this service does not implement (HTTP 501)."""

    status_code = 501
    error = "not_implemented"


class FieldError(InvalidRequest):
    """Bad admin input; ``field`` is the dotted path of the wrong field."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description, field=field)
        self.field = field


class TemporarilyUnavailable(ServiceError):
    """The request changed nothing and may be retried: ``503`` with ``Retry-After``."""

    status_code = 503
    error = "temporarily_unavailable"
    RETRY_AFTER_S = 5

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description)
        self.headers["Retry-After"] = str(self.RETRY_AFTER_S)

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


class StoreUnavailable(TemporarilyUnavailable):
    """The store cannot be reached."""


class PluginUnavailable(TemporarilyUnavailable):
    """A plugin failed under ``plugins.failure_mode.pre = fail_closed``."""


class PluginRejected(ServiceError):
    """A ``pre_auth`` plugin answered this OAuth error."""

    def __init__(self, status_code: int, error: str, description: str | None) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error


class ConfigError(Exception):
    """A tenant file or start-up option is wrong: names the file, key and reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason
