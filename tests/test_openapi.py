"""``GET /openapi.json`` (contract section 7): written from the application's route table,
valid OpenAPI 3.1, the public and admin APIs for every caller; the settings' schemas held
against their validators."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from app.admin import clients, credentials, grants
from app.errors import FieldError
from app.openapi.document import OPERATIONS, build, route_operations, template
from app.openapi.schemas import SCHEMAS
from app.openapi.settings_schema import LEAVES, NAME_PATTERN
from app.routes import routes
from app.settings import FIELDS
from app.types import JSON
from tests.admin.conftest import bearer, tenant_key


def table(app_routes: list[BaseRoute]) -> set[tuple[str, str]]:
    """``(METHOD, path)`` of every route, as the document spells paths."""
    return {(method, template(path)) for path, method, _ in route_operations(app_routes)}


def documented(document: JSON) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_every_route_is_documented_and_every_documented_operation_is_a_route() -> None:
    app_routes = routes()
    operations = table(app_routes)
    assert operations == documented(build(app_routes))
    assert set(OPERATIONS) == operations, "an entry of the operation tables has no route"
    # The walk goes through the admin API's mounts and its raw-path router.
    assert ("PUT", "/admin/v1/tenants/{tenant_id}/clients/{client_id}") in operations
    assert ("GET", "/openapi.json") in operations


async def _endpoint(request: Request) -> Response:
    return Response()


def test_a_route_added_without_an_entry_is_caught() -> None:
    extra = Route("/token/exchange", _endpoint, methods=["POST"])
    nested = Mount("/admin/v1/more", routes=[Route("/things", _endpoint, methods=["GET"])])
    app_routes = [*routes(), extra, nested]
    missing = table(app_routes) - documented(build(app_routes))
    assert missing == {("POST", "/token/exchange"), ("GET", "/admin/v1/more/things")}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build(routes())
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_the_validation_rejects_a_broken_document() -> None:
    document = build(routes())
    document["paths"]["/healthz"]["get"]["responses"] = "none"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(document).validate()


async def test_every_caller_gets_the_public_and_admin_apis(
    http: httpx.AsyncClient, app: Starlette, operator: dict[str, str]
) -> None:
    """Contract section 7: "an OpenAPI 3.1 document of the public and admin APIs", the
    same whoever asks (no key, a tenant's key, the operator's, a wrong one)."""
    r = await http.put(
        "/admin/v1/tenants/acme", json={"issuer": "https://acme.example"}, headers=operator
    )
    assert r.status_code == 201, r.text
    key = await tenant_key(http, operator, "acme")
    r = await http.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    document = r.json()
    assert document == build(app.routes)
    paths = set(document["paths"])
    assert {"/token/revoke", "/token/introspect", "/.well-known/openid-configuration"} <= paths
    assert "/admin/v1/tenants/{tenant_id}/credentials" in paths
    assert "/metrics" in paths
    assert document["components"]["securitySchemes"]["adminKey"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["clientSecretBasic"]["scheme"] == "basic"
    for headers in (
        operator,
        bearer(key),
        bearer("not-a-key"),
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ):
        r = await http.get("/openapi.json", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == document


def test_operations_only_the_operator_may_call_say_so() -> None:
    paths = build(routes())["paths"]
    assert paths["/admin/v1/tenants"]["get"]["description"].startswith("The operator's key only")
    assert paths["/admin/v1/tenants/{tenant_id}"]["put"]["description"].startswith(
        "The operator's key only"
    )
    assert "operator's key only" not in paths["/admin/v1/tenants/{tenant_id}"]["get"].get(
        "description", ""
    )


def test_path_parameters_come_from_the_route() -> None:
    operation = build(routes())["paths"][
        "/admin/v1/tenants/{tenant_id}/subjects/{sub}/clients/{client_id}"
    ]["delete"]
    names = [p["$ref"].rsplit("/", 1)[1] for p in operation["parameters"]]
    assert names == ["tenant_id", "sub", "client_id"]


# --- the schemas against the validation code ------------------------------------------


def test_every_setting_has_a_schema() -> None:
    assert set(LEAVES) == set(FIELDS)


def _accepts(path: str, value: Any) -> bool:
    try:
        FIELDS[path].validate(path, value)
    except FieldError:
        return False
    return True


def _item_schema(leaf: JSON) -> JSON:
    return leaf["items"] if leaf.get("type") == "array" else leaf


def _wrap(leaf: JSON, value: Any) -> Any:
    return [value] if leaf.get("type") == "array" else value


@pytest.mark.parametrize("path", [p for p, s in LEAVES.items() if s.get("type") == "integer"])
def test_number_bounds_are_the_validators(path: str) -> None:
    low, high = LEAVES[path]["minimum"], LEAVES[path]["maximum"]
    assert _accepts(path, low) and _accepts(path, high)
    assert not _accepts(path, low - 1) and not _accepts(path, high + 1)


@pytest.mark.parametrize("path", [p for p, s in LEAVES.items() if "enum" in _item_schema(s)])
def test_choices_are_the_validators(path: str) -> None:
    leaf = LEAVES[path]
    for choice in _item_schema(leaf)["enum"]:
        assert _accepts(path, _wrap(leaf, choice)), choice
    assert not _accepts(path, _wrap(leaf, "no-such-choice"))


def test_defaults_fit_the_schemas() -> None:
    for path, field in FIELDS.items():
        if field.default is not None:
            assert jsonschema_rs.is_valid(LEAVES[path], field.default), path


NAMED = ("jwt_access_tokens.grant_claim", "jwt_access_tokens.session_claim")


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.from_regex(NAME_PATTERN, fullmatch=True), st.text(max_size=140)))
def test_the_name_pattern_is_the_validators(value: str) -> None:
    """``app.settings._name`` keeps its pattern to itself: the schema's copy must agree."""
    for path in NAMED:
        assert jsonschema_rs.is_valid(LEAVES[path], value) == _accepts(path, value), value


def test_body_schemas_have_the_validators_fields() -> None:
    def names(schema_name: str) -> list[str]:
        return list(SCHEMAS[schema_name]["properties"])

    assert names("ClientInput") == list(clients.FIELDS)
    assert names("Credential") == list(credentials.FIELDS)
    assert names("GrantInput") == list(grants.FIELDS)
