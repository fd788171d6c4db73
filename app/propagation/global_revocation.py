"""``POST {issuer}/global-token-revocation``: Global Token Revocation
(draft-parecki-oauth-global-token-revocation-06).

An authorized caller (a security tool, an identity provider) names a subject with an
RFC 9493 Subject Identifier (``sub_id``, ``app.oauth.rfc9493``) in a JSON body, and
every credential and session of that subject at every client of the tenant is revoked
(``cascade.global_revocation_plan``), in one plan that the store applies before the
answer. The endpoint is the ordered list of steps in ``STEPS``, as RFC 7009's is.

The draft leaves authentication to the server ("MUST be authenticated"): the caller is
a confidential client of the tenant, authenticated as at the token endpoint with its
parameters as string members of the JSON body (or Basic), or a bearer access token of
the tenant (RFC 6750, the draft's examples); either needs the scope
``global_token_revocation`` (the client's, or the token's), else ``403``.

Answers (the draft's section "Revocation Response", which defines no body): ``204``
once the revocation is committed, also when the service knows nothing of the subject,
since it cannot tell an unknown subject from one whose only tokens are JWTs it never
saw, which the subject's not-before mark takes down all the same; ``400`` for a body or
subject identifier that is malformed, of an unsupported format, or of another issuer;
``401``; ``403``; ``404`` where the tenant has not enabled the endpoint; ``422`` when a
``pre_revoke`` plugin vetoed the revocation ("unable to log out the user").
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.errors import InsufficientScope, InvalidClient, InvalidRequest, NotFound, ServiceError
from app.oauth import cascade, rfc6750, rfc9493
from app.oauth.abuse_limits import limit_failures
from app.oauth.endpoint import Exchange, Step, run
from app.oauth.form import check_content_type
from app.oauth.interception import (
    load_plugins,
    map_response,
    post_revoke,
    pre_revoke,
    with_pre_auth,
)
from app.oauth.steps import authenticate_client
from app.request_body import read_body
from app.responses import NO_STORE

SCOPE = "global_token_revocation"
ENDPOINT = "global_revocation"
PATH = "/global-token-revocation"
JSON_TYPE = "application/json"
AUTH_MEMBERS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")
"""Client authentication parameters (RFC 6749 section 2.3.1, RFC 7523), read from the
JSON body as a form body would carry them."""
SUB_ID = "sub_id"
CALLER_SCOPE = "caller_scope"
SUB = "sub"


class RevocationVetoed(ServiceError):
    """A ``pre_revoke`` plugin vetoed the revocation: nothing was revoked."""

    status_code = 422
    error = "revocation_refused"


async def ensure_enabled(x: Exchange) -> None:
    if not x.tenant.settings.global_revocation_enabled:
        raise NotFound("global token revocation is not enabled for this tenant")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise InvalidRequest(f"the member {name[:40]} is repeated")
        out[name] = value
    return out


async def parse_body(x: Exchange) -> None:
    """The JSON object: ``sub_id`` kept for later, the client authentication members as
    the form, and the identifier's string members as ``sub_id.*`` for plugins."""
    check_content_type(x.request.headers.get("content-type"), JSON_TYPE)
    raw = await read_body(x.request, x.services.config.max_body_bytes)
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_members)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    except ValueError:
        raise InvalidRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    form: dict[str, str] = {}
    for name in AUTH_MEMBERS:
        if name in body:
            value = body[name]
            if not isinstance(value, str):
                raise InvalidRequest(f"{name} must be a string")
            form[name] = value
    if SUB_ID not in body:
        raise InvalidRequest("sub_id is missing")
    sub_id = body[SUB_ID]
    if isinstance(sub_id, dict):
        form.update({f"{SUB_ID}.{k}": v for k, v in sub_id.items() if isinstance(v, str)})
    x.form = form
    x.extra[SUB_ID] = sub_id


async def _authenticate_bearer(x: Exchange, token: str) -> None:
    if any(name in x.form for name in AUTH_MEMBERS if name != "client_id"):
        raise InvalidRequest("more than one client authentication method was used")
    found = await rfc6750.authenticate(x.services, x.tenant, token, x.now, x.log)
    client_id = x.form.get("client_id")
    if client_id is not None and client_id != found.caller.client_id:
        raise InvalidRequest("client_id does not match the access token's client")
    x.client = found.caller
    x.extra[CALLER_SCOPE] = found.scope
    x.log(client_id=x.client.client_id, auth_method=x.client.method)


async def authenticate_caller(x: Exchange) -> None:
    """A bearer access token where the request carries one, else client authentication."""
    token = rfc6750.bearer_token(x.request)
    if token is None:
        await authenticate_client(x)
    else:
        await _authenticate_bearer(x, token)


async def require_authorization(x: Exchange) -> None:
    caller = x.authenticated
    by_token = caller.method == rfc6750.METHOD
    if not by_token and not caller.confidential:
        raise InvalidClient(
            "global token revocation needs a confidential client", client_id=caller.client_id
        )
    scope: frozenset[str] = x.extra.get(CALLER_SCOPE, caller.client.scope)
    if SCOPE not in scope:
        refused = InsufficientScope(f"the caller lacks the scope {SCOPE}")
        if by_token:
            refused.headers["WWW-Authenticate"] = (
                f'Bearer realm="{x.tenant.issuer}", error="insufficient_scope", scope="{SCOPE}"'
            )
        raise refused


async def resolve_subject(x: Exchange) -> None:
    x.extra[SUB] = rfc9493.subject_of(x.extra[SUB_ID], x.tenant)


async def plan_revocation(x: Exchange) -> None:
    sub: str = x.extra[SUB]
    store, tenant_id = x.services.store, x.tenant.tenant_id
    clients = await store.subject_clients(tenant_id, sub, x.now)
    sessions = await store.subject_sessions(tenant_id, sub, x.now)
    x.plan = cascade.global_revocation_plan(sub, (c.client_id for c in clients), sessions, x.now)
    x.log(subject_clients=len(clients), subject_sessions=len(sessions))


async def apply_revocation(x: Exchange) -> None:
    if x.plan is None:
        return
    x.outcome = await x.services.store.apply_revocation(x.tenant.tenant_id, x.plan)
    x.log(outcome="revoked", revoked=x.outcome.count, cause=x.plan.cause)


async def respond(x: Exchange) -> None:
    if x.plan is None:
        raise RevocationVetoed("the tenant's policy refused to revoke this subject's tokens")
    x.response = Response(status_code=204, headers=NO_STORE)


STEPS: tuple[Step, ...] = (
    ensure_enabled,
    load_plugins,
    parse_body,
    limit_failures(with_pre_auth(authenticate_caller)),
    require_authorization,
    resolve_subject,
    plan_revocation,
    pre_revoke,
    apply_revocation,
    post_revoke,
    respond,
)


async def global_revocation_endpoint(request: Request) -> Response:
    return await run(Exchange.of(request, ENDPOINT), STEPS, (map_response,))
