"""The token endpoints without the router: pure ASGI middleware, innermost of the stack.

``POST {issuer}/token/revoke`` and ``POST {issuer}/token/introspect`` carry nearly all
of the traffic. Below tenancy and CORS their path is known exactly, so they are
answered here; Starlette's exception middleware, router, route match and
request-response wrappers (4 % of a revocation's instructions and 8 % of an
introspection's, measured in ``docs/PERFORMANCE.md``) are left to every other request.
What those layers did for these endpoints is done here: a ``ServiceError`` that escapes
the endpoint's own steps is rendered as its OAuth error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ServiceError
from app.middleware.tenancy import TENANT_KEY
from app.responses import error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutesMiddleware:
    def __init__(self, app: ASGIApp, *, routes: Mapping[str, Endpoint]) -> None:
        self.app = app
        self.routes = dict(routes)
        """``POST`` endpoints by their path below the issuer."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine: other requests get the app's own coroutine (see header_limits).
        if scope["type"] == "http" and scope["method"] == "POST" and TENANT_KEY in scope:
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                return _answer(endpoint, scope, receive, send)
        return self.app(scope, receive, send)


async def _answer(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        response = await endpoint(Request(scope, receive, send))
    except ServiceError as exc:
        response = error_response(exc)
    await response(scope, receive, send)
