"""Admin API routes under ``/admin/v1`` (contract section 5), wired in one place.

Handlers are thin: authenticate, authorize, parse JSON, call the operation of the
resource module (shared with the CLI), render. Status codes: ``PUT`` answers ``201`` when
it created the resource and ``200`` when it replaced it; ``POST …/admin-keys`` ``201``;
``DELETE`` ``204``, except subject withdrawal: ``200 {"revoked": N}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from app.admin import (
    admin_keys,
    clients,
    credentials,
    events,
    grants,
    plugins,
    receivers,
    signing_keys,
    subjects,
    tenants,
)
from app.admin.auth import Principal, authenticate, authorize, check_settings_patch
from app.admin.fields import as_object
from app.admin.http import (
    RawPathRouter,
    error_answer,
    json_response,
    no_content,
    path_params,
    read_json,
    read_optional_json,
    read_python,
)
from app.admin.representations import (
    admin_key_json,
    client_json,
    events_json,
    grant_json,
    plugin_json,
    receiver_json,
    registration_json,
    subject_client_json,
    tenant_json,
    tenant_summary,
)
from app.errors import FieldError, ServiceError
from app.middleware.request_context import log_fields
from app.plugins.uploads import MAX_SOURCE_BYTES
from app.services import Services


@dataclass(frozen=True, slots=True)
class Call:
    """One authorized admin request."""

    request: Request
    services: Services
    principal: Principal
    params: dict[str, str]

    @property
    def tenant_id(self) -> str:
        return self.params["tenant_id"]

    async def body(self) -> Any:
        return await read_json(self.request)


Handler = Callable[[Call], Awaitable[Response]]


def created_or_replaced(created: bool) -> int:
    return 201 if created else 200


# --- tenants ---------------------------------------------------------------------------


async def list_tenants(call: Call) -> Response:
    found = await tenants.list_tenants(call.services)
    return json_response({"tenants": [tenant_summary(t) for t in found]})


async def put_tenant(call: Call) -> Response:
    tenant, created = await tenants.put_tenant(call.services, call.tenant_id, await call.body())
    return json_response(tenant_json(tenant), created_or_replaced(created))


async def get_tenant(call: Call) -> Response:
    return json_response(tenant_json(await tenants.require_tenant(call.services, call.tenant_id)))


async def patch_tenant(call: Call) -> Response:
    patch = await call.body()
    check_settings_patch(call.principal, as_object(patch))
    return json_response(
        tenant_json(await tenants.patch_tenant(call.services, call.tenant_id, patch))
    )


async def delete_tenant(call: Call) -> Response:
    await tenants.delete_tenant(call.services, call.tenant_id)
    return no_content()


# --- admin keys ------------------------------------------------------------------------


async def create_admin_key(call: Call) -> Response:
    return json_response(await admin_keys.create_admin_key(call.services, call.tenant_id), 201)


async def list_admin_keys(call: Call) -> Response:
    found = await admin_keys.list_admin_keys(call.services, call.tenant_id)
    return json_response({"admin_keys": [admin_key_json(k) for k in found]})


async def delete_admin_key(call: Call) -> Response:
    await admin_keys.delete_admin_key(call.services, call.tenant_id, call.params["key_id"])
    return no_content()


# --- clients ---------------------------------------------------------------------------


async def list_clients(call: Call) -> Response:
    found = await clients.list_clients(call.services, call.tenant_id)
    return json_response({"clients": [client_json(c) for c in found]})


async def put_client(call: Call) -> Response:
    client_id = call.params["client_id"]
    done = await clients.put_client(call.services, call.tenant_id, client_id, await call.body())
    return json_response(
        client_json(done.client, done.generated_secret), created_or_replaced(done.created)
    )


async def get_client(call: Call) -> Response:
    client = await clients.get_client(call.services, call.tenant_id, call.params["client_id"])
    return json_response(client_json(client))


async def delete_client(call: Call) -> Response:
    await clients.delete_client(call.services, call.tenant_id, call.params["client_id"])
    return no_content()


# --- credentials, grants, subjects, events ---------------------------------------------


async def register_credentials(call: Call) -> Response:
    outcome = await credentials.register_credentials(
        call.services, call.tenant_id, await call.body()
    )
    return json_response(registration_json(outcome))


async def put_grant(call: Call) -> Response:
    grant_id = call.params["grant_id"]
    grant, created = await grants.put_grant(
        call.services, call.tenant_id, grant_id, await call.body()
    )
    return json_response(grant_json(grant), created_or_replaced(created))


async def get_grant(call: Call) -> Response:
    grant = await grants.get_grant(call.services, call.tenant_id, call.params["grant_id"])
    return json_response(grant_json(grant))


async def subject_clients(call: Call) -> Response:
    found = await subjects.subject_clients(call.services, call.tenant_id, call.params["sub"])
    return json_response({"clients": [subject_client_json(e) for e in found]})


async def withdraw_client(call: Call) -> Response:
    count = await subjects.withdraw_client(
        call.services, call.tenant_id, call.params["sub"], call.params["client_id"]
    )
    return json_response({"revoked": count})


def query_parameter(call: Call, name: str) -> str | None:
    """The query parameter ``name``, given at most once (``400`` if repeated)."""
    values = call.request.query_params.getlist(name)
    if len(values) > 1:
        raise FieldError(name, "is repeated")
    return values[0] if values else None


async def list_events(call: Call) -> Response:
    after = events.parse_after(query_parameter(call, "after"))
    limit = events.parse_limit(query_parameter(call, "limit"))
    found, next_cursor = await events.list_events(call.services, call.tenant_id, after, limit)
    return json_response(events_json(found, next_cursor))


# --- plugins ---------------------------------------------------------------------------


def uploader(principal: Principal) -> str:
    return "operator" if principal.is_operator else f"key:{principal.key_id}"


async def list_plugins(call: Call) -> Response:
    found = await plugins.list_plugins(call.services, call.tenant_id)
    return json_response({"plugins": [plugin_json(p, enabled=on) for p, on in found]})


async def put_plugin(call: Call) -> Response:
    body = await read_python(call.request, MAX_SOURCE_BYTES)
    stored = await plugins.put_plugin(
        call.services, call.tenant_id, call.params["name"], body, uploader(call.principal)
    )
    return json_response(plugin_json(stored), 201)


async def get_plugin(call: Call) -> Response:
    version = plugins.parse_version(call.params.get("version"))
    found, enabled = await plugins.read_plugin(
        call.services, call.tenant_id, call.params["name"], version
    )
    return json_response(plugin_json(found, source=True, enabled=enabled))


async def delete_plugin(call: Call) -> Response:
    await plugins.delete_plugin(call.services, call.tenant_id, call.params["name"])
    return no_content()


async def list_plugin_versions(call: Call) -> Response:
    found = await plugins.list_versions(call.services, call.tenant_id, call.params["name"])
    return json_response({"versions": [plugin_json(p) for p in found]})


async def activate_plugin_version(call: Call) -> Response:
    version = plugins.parse_version(call.params["version"])
    assert version is not None
    done = await plugins.activate(call.services, call.tenant_id, call.params["name"], version)
    return json_response(plugin_json(done))


async def test_plugin(call: Call) -> Response:
    result = await plugins.dry_run(
        call.services, call.tenant_id, call.params["name"], await call.body()
    )
    return json_response(result)


# --- the tenant's own signing keys --------------------------------------------------------


async def list_signing_keys(call: Call) -> Response:
    found = await signing_keys.list_keys(call.services, call.tenant_id)
    return json_response(signing_keys.keys_json(found))


async def rotate_signing_keys(call: Call) -> Response:
    body = await read_optional_json(call.request)
    found = await signing_keys.rotate(call.services, call.tenant_id, body)
    return json_response(signing_keys.keys_json(found))


# --- receivers of Security Event Tokens ---------------------------------------------------


async def list_receivers(call: Call) -> Response:
    found = await receivers.list_receivers(call.services, call.tenant_id)
    return json_response({"receivers": [receiver_json(v.receiver, v.state) for v in found]})


async def put_receiver(call: Call) -> Response:
    view, created = await receivers.put_receiver(
        call.services, call.tenant_id, call.params["receiver_id"], await call.body()
    )
    return json_response(receiver_json(view.receiver, view.state), created_or_replaced(created))


async def get_receiver(call: Call) -> Response:
    view = await receivers.get_receiver(call.services, call.tenant_id, call.params["receiver_id"])
    return json_response(receiver_json(view.receiver, view.state, view.log, view.lag))


async def delete_receiver(call: Call) -> Response:
    await receivers.delete_receiver(call.services, call.tenant_id, call.params["receiver_id"])
    return no_content()


# --- wiring ----------------------------------------------------------------------------


OPERATOR_ONLY = False
TENANT_KEYS = True
"""Whether the tenant's own admin keys may call a method (the operator always may)."""


class AdminRoute(Route):
    """An admin resource. ``tenant_keys``: per method, whether the tenant's own admin keys
    may call it (what the OpenAPI document says of the method)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        tenant_keys: dict[str, bool],
    ) -> None:
        super().__init__(path, endpoint, methods=list(tenant_keys))
        self.tenant_keys = tenant_keys


def resource(path: str, methods: dict[str, tuple[Handler, bool]]) -> Route:
    """One path, a handler per method; authentication and errors handled here."""

    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        handler, tenant_key = methods["GET" if request.method == "HEAD" else request.method]
        try:
            principal = await authenticate(services, request)
            params = path_params(request)
            tenant_id = params.get("tenant_id")
            if tenant_id is not None:
                log_fields(request.scope)["tenant_id"] = tenant_id
            authorize(principal, tenant_id, tenant_key=tenant_key)
            return await handler(Call(request, services, principal, params))
        except ServiceError as exc:
            return error_answer(request.scope, exc)

    return AdminRoute(path, endpoint, {m: key for m, (_, key) in methods.items()})


def admin_routes() -> list[BaseRoute]:
    """Matched on the percent-encoded path; a trailing ``:path`` id may hold a raw ``/``."""
    tenant = "/tenants/{tenant_id}"
    routes = [
        resource("/tenants", {"GET": (list_tenants, OPERATOR_ONLY)}),
        resource(
            tenant,
            {
                "PUT": (put_tenant, OPERATOR_ONLY),
                "GET": (get_tenant, TENANT_KEYS),
                "PATCH": (patch_tenant, TENANT_KEYS),
                "DELETE": (delete_tenant, OPERATOR_ONLY),
            },
        ),
        resource(
            f"{tenant}/admin-keys",
            {"POST": (create_admin_key, OPERATOR_ONLY), "GET": (list_admin_keys, OPERATOR_ONLY)},
        ),
        resource(f"{tenant}/admin-keys/{{key_id}}", {"DELETE": (delete_admin_key, OPERATOR_ONLY)}),
        resource(f"{tenant}/clients", {"GET": (list_clients, TENANT_KEYS)}),
        resource(
            f"{tenant}/clients/{{client_id:path}}",
            {
                "PUT": (put_client, TENANT_KEYS),
                "GET": (get_client, TENANT_KEYS),
                "DELETE": (delete_client, TENANT_KEYS),
            },
        ),
        resource(f"{tenant}/credentials", {"POST": (register_credentials, TENANT_KEYS)}),
        resource(
            f"{tenant}/grants/{{grant_id:path}}",
            {"PUT": (put_grant, TENANT_KEYS), "GET": (get_grant, TENANT_KEYS)},
        ),
        resource(f"{tenant}/subjects/{{sub}}/clients", {"GET": (subject_clients, TENANT_KEYS)}),
        resource(
            f"{tenant}/subjects/{{sub}}/clients/{{client_id:path}}",
            {"DELETE": (withdraw_client, TENANT_KEYS)},
        ),
        resource(f"{tenant}/events", {"GET": (list_events, TENANT_KEYS)}),
        resource(f"{tenant}/plugins", {"GET": (list_plugins, TENANT_KEYS)}),
        resource(
            f"{tenant}/plugins/{{name}}",
            {
                "PUT": (put_plugin, TENANT_KEYS),
                "GET": (get_plugin, TENANT_KEYS),
                "DELETE": (delete_plugin, TENANT_KEYS),
            },
        ),
        resource(
            f"{tenant}/plugins/{{name}}/versions", {"GET": (list_plugin_versions, TENANT_KEYS)}
        ),
        resource(
            f"{tenant}/plugins/{{name}}/versions/{{version}}", {"GET": (get_plugin, TENANT_KEYS)}
        ),
        resource(
            f"{tenant}/plugins/{{name}}/versions/{{version}}/activate",
            {"POST": (activate_plugin_version, TENANT_KEYS)},
        ),
        resource(f"{tenant}/plugins/{{name}}/test", {"POST": (test_plugin, TENANT_KEYS)}),
        resource(f"{tenant}/receivers", {"GET": (list_receivers, TENANT_KEYS)}),
        resource(
            f"{tenant}/receivers/{{receiver_id}}",
            {
                "PUT": (put_receiver, TENANT_KEYS),
                "GET": (get_receiver, TENANT_KEYS),
                "DELETE": (delete_receiver, TENANT_KEYS),
            },
        ),
        resource(f"{tenant}/signing-keys", {"GET": (list_signing_keys, TENANT_KEYS)}),
        resource(f"{tenant}/signing-keys/rotate", {"POST": (rotate_signing_keys, TENANT_KEYS)}),
    ]
    return [Mount("", app=RawPathRouter(routes))]
