"""The document, built from the application's route table, and ``GET /openapi.json``.

Its ``paths`` are the routes the application has (``Route`` objects, through every
``Mount`` and the admin API's raw-path router), each method looked up in the operation
tables of ``public.py`` and ``admin.py``; path parameters come from the route's path.
``HEAD``, which Starlette adds to every ``GET``, is not listed.

The same document for every caller, the admin API and ``/metrics`` included (contract
section 7: "the public and admin APIs"): the contract publishes that API anyway, and
each of its operations says which key it needs. Components no operation refers to are
left out.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from app.admin.routes import AdminRoute
from app.middleware.request_context import log_fields
from app.openapi import admin, feed, public, status_list
from app.openapi.components import (
    PARAMETERS,
    RESPONSES,
    SECURITY_SCHEMES,
    param,
    response,
)
from app.openapi.schemas import SCHEMAS
from app.responses import NO_STORE
from app.types import JSON

OPENAPI_VERSION = "3.1.0"
OPERATIONS: dict[tuple[str, str], JSON] = {
    **public.OPERATIONS,
    **feed.OPERATIONS,
    **status_list.OPERATIONS,
    **admin.OPERATIONS,
}
"""What the document says of each ``(METHOD, path)``."""
PATH_PARAMETER_RE = re.compile(r"\{(\w+)(?::\w+)?\}")
TAGS: list[JSON] = [
    {"name": public.PUBLIC, "description": "A tenant's token endpoints (contract section 4)."},
    {"name": public.DISCOVERY, "description": "A tenant's metadata (RFC 8414)."},
    {"name": public.SERVICE, "description": "The service itself (contract section 7)."},
    {"name": admin.ADMIN_TAG, "description": "The admin API (contract section 5)."},
]
OPERATOR_ONLY_NOTE = "The operator's key only."
DESCRIPTION = (
    "A multi-tenant OAuth 2.0 token revocation service: RFC 7009 revocation, RFC 7662 "
    "introspection and RFC 8414 discovery per tenant, and the admin API. A tenant's "
    "endpoints are paths below its issuer URL, or on any host with a Tenant-ID or Issuer "
    "header. Without the operator's admin key this document leaves out the admin API and "
    "/metrics."
)


def route_operations(
    routes: Sequence[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, str, Route]]:
    """``(path, METHOD, route)`` of every route below ``routes``; paths as written in the
    route table (converters included), ``HEAD`` left out."""
    for route in routes:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield prefix + route.path, method, route
        elif isinstance(route, Mount):
            yield from route_operations(_routes_of(route.app), prefix + route.path)


def _routes_of(app: Any) -> Sequence[BaseRoute]:
    """A mounted app's routes: a router's, or those of the router it wraps."""
    routes = getattr(app, "routes", None)
    if routes is None:
        routes = getattr(getattr(app, "router", None), "routes", None)
    return routes or []


def template(path: str) -> str:
    """The OpenAPI form of a route path: ``{client_id:path}`` is ``{client_id}``."""
    return PATH_PARAMETER_RE.sub(r"{\1}", path)


def build(routes: Sequence[BaseRoute]) -> JSON:
    """The document of ``routes``, the admin API's operations included.

    A route without an entry in ``OPERATIONS`` is left out (``tests/test_openapi.py``
    fails on it); a path parameter without a component in ``PARAMETERS`` raises
    ``KeyError``.
    """
    paths: JSON = {}
    for raw_path, method, route in route_operations(routes):
        path = template(raw_path)
        entry = OPERATIONS.get((method, path))
        if entry is None:
            continue
        operation = copy.deepcopy(entry)
        names = PATH_PARAMETER_RE.findall(raw_path)
        own = operation.get("parameters", [])
        if names or own:
            operation["parameters"] = [param(n) for n in names] + own
        if isinstance(route, AdminRoute) and not route.tenant_keys[method]:
            text = operation.get("description")
            operation["description"] = (
                f"{OPERATOR_ONLY_NOTE} {text}" if text else OPERATOR_ONLY_NOTE
            )
        operation["responses"].setdefault("431", response("HeadersTooLarge"))
        operation["operationId"] = operation_id(method, path)
        paths.setdefault(path, {})[method.lower()] = operation
    document: JSON = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Revocation service", "version": _version(), "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": PARAMETERS,
            "responses": RESPONSES,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    return _without_unused_components(document)


def operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path.replace("{", "by_"))
    return "_".join([method.lower(), *words])


def _version() -> str:
    try:
        return importlib.metadata.version("revocation-service")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _without_unused_components(document: JSON) -> JSON:
    """The document with only the components its paths refer to, directly or not."""
    components: JSON = document["components"]
    used: dict[str, set[str]] = {kind: set() for kind in components}
    pending: list[Any] = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            target = node.get("$ref")
            if isinstance(target, str):
                _, _, kind, name = target.split("/", 3)
                if name not in used[kind]:
                    used[kind].add(name)
                    pending.append(components[kind][name])
            for requirement in node.get("security", []) if "responses" in node else []:
                used["securitySchemes"].update(requirement)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    document["components"] = {
        kind: {name: entry for name, entry in entries.items() if name in used[kind]}
        for kind, entries in components.items()
    }
    return document


def document(request: Request) -> bytes:
    """This application's document, rendered once."""
    state = request.app.state
    rendered: bytes | None = getattr(state, "openapi_document", None)
    if rendered is None:
        rendered = state.openapi_document = json.dumps(build(request.app.routes)).encode()
    return rendered


async def openapi_endpoint(request: Request) -> Response:
    log_fields(request.scope)["endpoint"] = "openapi"
    return Response(document(request), media_type="application/json", headers=NO_STORE)
