"""Steering generated requests into the seeded world, so that most reach deep code.

Left alone, nearly every generated request would stop at the first gate: an unknown
tenant, an unknown client, an unknown token. For each case a few choices are drawn (by
Hypothesis, so a run is reproducible): most get a seeded tenant, a seeded client's
credentials and a seeded token or record; the rest keep what was generated, so the
gates themselves are fuzzed too. Destructive tenant operations go to the scratch tenant,
so the seeded tenants stay in place. The admin key is not steered: schemathesis sends the
operator's key with every admin request (``config.py``) and, to check that it is not
ignored, sends requests again without it and with a wrong one.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from schemathesis import Case

from tests.fuzz import world
from tests.fuzz.world import World

Draw = Callable[[st.SearchStrategy[Any]], Any]

TENANT_LEVEL = "/admin/v1/tenants/{tenant_id}"
PLUGIN_LEVEL = "/plugins/{name}"
WITHDRAWAL = "/subjects/{sub}/clients/{client_id}"
LATIN_1 = st.one_of(
    st.text(st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1, max_size=40),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
    st.binary(max_size=30).map(lambda raw: base64.b64encode(raw).decode()),
)
PUBLIC_PATHS = (
    "/token/revoke",
    "/token/introspect",
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
)


def _percent(draw: Draw) -> int:
    value: int = draw(st.integers(0, 99))
    return value


def _headers(case: Case) -> Any:
    if case.headers is None:
        case.headers = {}
    return case.headers


def steer(case: Case, draw: Draw, seeded: World) -> str:
    """Adjust ``case`` in place; returns the base URL to send it to.

    Reading ``case.meta`` afterwards makes schemathesis revalidate what was changed: a
    negative case steered into valid values is then checked as a positive one.
    """
    base_url = _steer(case, draw, seeded)
    assert case.meta is not None
    return base_url


def _steer(case: Case, draw: Draw, seeded: World) -> str:
    path = case.operation.path
    if path.startswith("/admin/"):
        _steer_admin(case, draw)
    elif path in PUBLIC_PATHS:
        return _steer_public(case, draw, seeded)
    return seeded.base_url


def _steer_admin(case: Case, draw: Draw) -> None:
    params = case.path_parameters
    if not params or _percent(draw) >= 85:
        return
    method, path = case.method.upper(), case.operation.path
    if "tenant_id" in params:
        params["tenant_id"] = _tenant_for(method, path, draw)
    # Seeded ids for reads and withdrawals; a write or delete of a seeded client, grant
    # or plugin would leave the seeded world unusable for the cases after it.
    if method == "GET" or path.endswith(WITHDRAWAL):
        if "client_id" in params:
            params["client_id"] = draw(st.sampled_from(sorted(world.CLIENTS)))
        if "grant_id" in params:
            params["grant_id"] = draw(st.sampled_from(world.GRANTS))
        if "sub" in params:
            params["sub"] = draw(st.sampled_from(world.SUBJECTS))
        if "receiver_id" in params:
            params["receiver_id"] = world.RECEIVER
    if "name" in params and method != "DELETE":
        params["name"] = world.PLUGIN
        if "version" in params:
            params["version"] = 1
    if isinstance(case.body, (dict, list)) and _percent(draw) < 50:
        _steer_admin_body(case.body, draw)
    if path.endswith(PLUGIN_LEVEL) and method == "PUT" and _percent(draw) < 30:
        case.body = world.PLUGIN_SOURCE.decode()


def _tenant_for(method: str, path: str, draw: Draw) -> str:
    """A seeded tenant; the scratch tenant for writes of a tenant itself, and for its
    deletion a tenant nobody needs (deleted once, then 404)."""
    if path == TENANT_LEVEL and method == "DELETE":
        return world.DOOMED
    if path == TENANT_LEVEL and method != "GET":
        return world.SCRATCH
    return world.tenant_id(draw(st.sampled_from(world.POLICIES)))


def _steer_admin_body(body: dict[str, Any] | list[Any], draw: Draw) -> None:
    """A registered client in credentials and grants, so that more of them are stored."""
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict) and "client_id" in item:
            item["client_id"] = draw(st.sampled_from(sorted(world.CLIENTS)))


def _steer_public(case: Case, draw: Draw, seeded: World) -> str:
    policy = draw(st.sampled_from(world.POLICIES))
    headers = _headers(case)
    route = _percent(draw)
    base_url = seeded.base_url
    if route < 60:
        # Below the issuer's URL: no tenant header.
        base_url = seeded.issuer(policy)
        headers.pop("Tenant-ID", None)
        headers.pop("Issuer", None)
    elif route < 75:
        headers["Tenant-ID"] = world.tenant_id(policy)
        headers.pop("Issuer", None)
    elif route < 85:
        headers["Issuer"] = seeded.issuer(policy)
        headers.pop("Tenant-ID", None)
    if isinstance(case.body, dict):
        _steer_form(case.body, headers, draw, policy)
    return base_url


CLIENT_AUTH = ("basic", "basic", "basic", "post", "public", "garbage", "generated")
"""How a steered form authenticates: a seeded client by Basic, by the form (post), as a
public client, with malformed Basic credentials, or as generated."""


def _steer_form(form: dict[str, Any], headers: Any, draw: Draw, policy: str) -> None:
    auth = draw(st.sampled_from(CLIENT_AUTH))
    if auth in ("basic", "garbage"):
        for name in ("client_secret", "client_assertion", "client_assertion_type"):
            form.pop(name, None)
        if form.get("client_id") is not None and _percent(draw) < 80:
            form.pop("client_id")
        # Malformed: any Latin-1 text, as an attacker writes it, or base64 of any bytes.
        garbage = "Basic " + draw(LATIN_1) if auth == "garbage" else None
        headers["Authorization"] = garbage or world.basic("app")
    elif auth == "post":
        headers.pop("Authorization", None)
        form.update(client_id="post", client_secret=world.SECRET)
        form.pop("client_assertion", None)
        form.pop("client_assertion_type", None)
    elif auth == "public":
        headers.pop("Authorization", None)
        form["client_id"] = "spa"
        for name in ("client_secret", "client_assertion", "client_assertion_type"):
            form.pop(name, None)
    if _percent(draw) < 60:
        form["token"] = world.token(policy, draw(st.integers(0, world.TOKENS_PER_TENANT - 1)))
    if "callback" in form and _percent(draw) < 70:
        del form["callback"]
