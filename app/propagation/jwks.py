"""``GET {issuer}/jwks``: the tenant's public signing keys (RFC 7517 JWK Set), for
receivers of its Security Event Tokens and readers of its status list.

The current key and the rotated-out keys still published (``signing_keys``), never a
private member; ``{"keys": []}`` before the tenant's first signature (an anonymous read
creates no key). Cached briefly: a receiver that meets an unknown ``kid`` fetches again,
and sees a rotation within ``MAX_AGE_S``.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from app.middleware.request_context import log_fields
from app.middleware.tenancy import TENANT_KEY
from app.propagation.signing_keys import published_jwks
from app.services import Services

MEDIA_TYPE = "application/jwk-set+json"
MAX_AGE_S = 60


async def jwks_endpoint(request: Request) -> Response:
    log_fields(request.scope)["endpoint"] = "jwks"
    services: Services = request.app.state.services
    body = await published_jwks(services, request.scope[TENANT_KEY], services.clock())
    return Response(
        json.dumps(body, separators=(",", ":")),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": f"public, max-age={MAX_AGE_S}"},
    )
