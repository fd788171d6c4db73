"""The Token Status List endpoints (contract section 4.4), ``app.propagation.status_list``."""

from __future__ import annotations

from app.openapi.components import ANYONE, json_answer, response
from app.openapi.public import DISCOVERY, _tenant_operation
from app.openapi.schemas import closed
from app.propagation.status_indexes import LIST_SIZE
from app.propagation.status_list import MEDIA_TYPE
from app.types import JSON

CACHING: JSON = {
    "Cache-Control": {
        "description": "max-age=<the tenant's status_list.ttl_s>.",
        "schema": {"type": "string"},
    },
}
TOKEN: JSON = {
    "type": "string",
    "description": "A compact JWS (header typ statuslist+jwt, alg ES256, kid of a key at "
    "{issuer}/jwks) whose claims are iss, sub (this list's URI), iat, exp (iat + 2 ttl), "
    "ttl (the tenant's status_list.ttl_s) and status_list: bits 1, lst (the list, "
    f"{LIST_SIZE} entries, ZLIB-compressed and base64url-encoded; entry i is bit i mod 8, "
    "from the least significant, of byte i div 8; 1: revoked) and aggregation_uri.",
}
AGGREGATION: JSON = closed(
    {"status_lists": {"type": "array", "items": {"type": "string"}}}, ["status_lists"]
)
NOT_SERVED: JSON = {
    "400": response("InvalidRequest"),
    "404": response("NoTenant"),
    "503": response("Unavailable"),
}

OPERATIONS: dict[tuple[str, str], JSON] = {
    ("GET", "/status-lists/{number}"): _tenant_operation(
        "A Status List Token (IETF OAuth Token Status List draft)",
        DISCOVERY,
        ANYONE,
        {
            "200": {
                "description": "The list as it stands: a revocation by any worker or "
                "instance shows within a second. gzip-coded where Accept-Encoding allows "
                "it (that representation has an ETag of its own).",
                "headers": {
                    **CACHING,
                    "ETag": {"description": "Of this token.", "schema": {"type": "string"}},
                },
                "content": {MEDIA_TYPE: {"schema": TOKEN}},
            },
            "304": {
                "description": "If-None-Match names the current token's ETag.",
                "headers": CACHING,
            },
            **NOT_SERVED,
            "406": json_answer(
                {"type": "object"}, f"Accept rules out {MEDIA_TYPE} (the only form served)."
            ),
            "501": json_answer(
                {"type": "object"}, "time= (historical resolution) is not supported."
            ),
        },
        description="Where the tenant sets status_list.enabled; public. A registered "
        "credential's status claim names its list (uri) and entry (idx). 404: the tenant "
        "has no status list, or no list of this number.",
    ),
    ("GET", "/status-lists"): _tenant_operation(
        "The tenant's status lists (Status List Aggregation)",
        DISCOVERY,
        ANYONE,
        {
            "200": json_answer(AGGREGATION, "The URI of every list, in order.", CACHING),
            **NOT_SERVED,
        },
        description="Where the tenant sets status_list.enabled; public. Discovery names it "
        "status_list_aggregation_endpoint.",
    ),
}
