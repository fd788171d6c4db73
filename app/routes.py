"""Every route of the service, wired in one place.

Public endpoints are per tenant: the tenancy middleware has already resolved the tenant
and stripped the issuer's path, so they are routed at their path below the issuer.

No router redirects (``redirect_slashes`` off, here and in ``app.application``): a
redirect would be built from the path below the issuer and the client's ``Host``, so it
would leave the tenant or point at a host the request chose (contract section 7). A path
with an extra ``/`` is an unknown path: ``404``.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, Router

from app.admin.routes import admin_routes
from app.health import healthz, readyz
from app.metrics import metrics_endpoint
from app.oauth.rfc7009 import revocation_endpoint
from app.oauth.rfc7662 import introspection_endpoint
from app.oauth.rfc8414 import discovery_endpoint
from app.openapi.document import openapi_endpoint
from app.propagation.feed import events_endpoint
from app.propagation.global_revocation import global_revocation_endpoint
from app.propagation.jwks import jwks_endpoint
from app.propagation.rfc8936 import set_poll_endpoint
from app.propagation.status_list import status_list_aggregation_endpoint, status_list_endpoint

DIRECT_ROUTES = {"/token/revoke": revocation_endpoint, "/token/introspect": introspection_endpoint}
"""``POST`` endpoints that ``DirectRoutesMiddleware`` answers before the router (the
router still lists them, for the OpenAPI document and any request that reaches it)."""


def routes() -> list[BaseRoute]:
    return [
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in DIRECT_ROUTES.items()),
        Route("/revocation/events", events_endpoint, methods=["GET", "POST"]),
        Route("/global-token-revocation", global_revocation_endpoint, methods=["POST"]),
        Route("/revocation/set-poll/{receiver_id}", set_poll_endpoint, methods=["POST"]),
        Route("/.well-known/openid-configuration", discovery_endpoint, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", discovery_endpoint, methods=["GET"]),
        Route("/jwks", jwks_endpoint, methods=["GET"]),
        Route("/status-lists", status_list_aggregation_endpoint, methods=["GET"]),
        Route("/status-lists/{number:int}", status_list_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_endpoint, methods=["GET"]),
        Mount("/admin/v1", app=Router(admin_routes(), redirect_slashes=False)),
    ]
