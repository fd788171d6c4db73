"""Global Token Revocation (draft-parecki-oauth-global-token-revocation): a subject's
every credential and session, at every client of the tenant, revoked by one request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import ServiceConfig
from tests.plugins.probes import _probe
from tests.support.issuer_keys import access_claims, rsa_key
from tests.support.world import OPERATOR, SECRET, Tenant, World, basic, make_world

PROBES = Path(__file__).parents[1] / "plugins" / "probes"
RSA = rsa_key()
SCOPE = "global_token_revocation"
PATH = "/global-token-revocation"


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(data_dir=tmp_path / "data", tenants_dir=None, plugins_dir=PROBES)


async def gtr_world(http: httpx.AsyncClient, tenant_id: str = "acme", **settings: Any) -> World:
    """A tenant with Global Token Revocation on, JWT keys, and a caller ``idp`` with the
    scope."""
    settings.setdefault("global_revocation", {"enabled": True})
    world = await make_world(http, tenant_id, **settings)
    await world.tenant.patch({"jwt_access_tokens": {"jwks": RSA.jwks()}})
    await world.tenant.client("idp", secret=SECRET, scope=SCOPE)
    return world


def sub_id(value: str, fmt: str = "opaque", /, **members: str) -> dict[str, Any]:
    """A request body naming ``value`` as an opaque identifier, or ``members`` in ``fmt``."""
    return {"sub_id": {"format": fmt, **({"id": value} if fmt == "opaque" else members)}}


async def gtr(tenant: Tenant, body: Any, auth: dict[str, str] | None = None) -> httpx.Response:
    """The request, by the caller ``idp`` (Basic) unless ``auth`` says otherwise."""
    headers = {**tenant.headers, **(basic("idp", SECRET) if auth is None else auth)}
    return await tenant.http.post(PATH, json=body, headers=headers)


async def alice_everywhere(world: World) -> dict[str, str]:
    """Alice's tokens at three clients, a session, grant records and a JWT; and Bob's."""
    t = world.tenant
    await t.register(
        {"token": "a-app-at", "type": "access_token", "client_id": "app", "sub": "alice",
         "grant_id": "g-app"},
        {"token": "a-app-rt", "type": "refresh_token", "client_id": "app", "sub": "alice",
         "grant_id": "g-app"},
        {"token": "a-other-rt", "type": "refresh_token", "client_id": "other", "sub": "alice",
         "device_session_id": "sso-1"},
        {"token": "a-spa-ds", "type": "device_secret", "client_id": "spa", "sub": "alice",
         "device_session_id": "sso-1"},
        # Bound to Alice's session, though registered without a subject.
        {"token": "sso-rt", "type": "refresh_token", "client_id": "spa",
         "device_session_id": "sso-1"},
        {"token": "b-app-at", "type": "access_token", "client_id": "app", "sub": "bob"},
    )  # fmt: skip
    for grant_id, client_id, sub in (("g-app", "app", "alice"), ("g-other", "other", "alice"),
                                     ("g-bob", "app", "bob")):  # fmt: skip
        r = await t.http.put(
            f"/admin/v1/tenants/{t.tenant_id}/grants/{grant_id}",
            json={"client_id": client_id, "sub": sub},
            headers=OPERATOR,
        )
        assert r.status_code == 201, r.text
    return {
        "alice_jwt": RSA.sign(access_claims(t.issuer, client_id="other")),
        "bob_jwt": RSA.sign(access_claims(t.issuer, sub="bob")),
    }


ALICE = ("a-app-at", "a-app-rt", "a-other-rt", "sso-rt")


async def test_every_token_and_session_of_the_subject_falls(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    jwts = await alice_everywhere(world)
    for token in (*ALICE, jwts["alice_jwt"], "b-app-at", jwts["bob_jwt"]):
        assert await world.active(token), token

    r = await gtr(world.tenant, sub_id("alice"))
    assert (r.status_code, r.content) == (204, b"")
    assert r.headers["cache-control"] == "no-store"

    for token in (*ALICE, jwts["alice_jwt"]):
        assert not await world.active(token), token
    for token in ("b-app-at", jwts["bob_jwt"]):
        assert await world.active(token), token
    # A device secret is never active at introspection: its state shows in its session.
    ended = [e for e in await world.tenant.events() if e["type"] == "session_ended"]
    assert [(e["device_session_id"], e["sub"], e["cause"]) for e in ended] == [
        ("sso-1", "alice", "global_revocation")
    ]
    [revoked] = [e for e in await world.tenant.events() if e["type"] == "revoked"]
    assert (revoked["sub"], revoked["cause"], revoked["count"]) == (
        "alice",
        "global_revocation",
        5,  # four tokens and the device secret
    )
    assert "client_id" not in revoked
    url = f"/admin/v1/tenants/{world.tenant.tenant_id}"
    clients = await http.get(f"{url}/subjects/alice/clients", headers=OPERATOR)
    assert clients.json() == {"clients": []}
    assert (await http.get(f"{url}/grants/g-app", headers=OPERATOR)).status_code == 404
    assert (await http.get(f"{url}/grants/g-other", headers=OPERATOR)).status_code == 404
    assert (await http.get(f"{url}/grants/g-bob", headers=OPERATOR)).status_code == 200
    # The authorization server issues new tokens once Alice logs in again.
    later = RSA.sign(access_claims(world.tenant.issuer, iat=int(time.time()) + 2))
    assert await world.active(later)


async def test_another_tenants_subject_of_the_same_name_stays(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    beta = await gtr_world(http, "beta")
    await world.tenant.register({"token": "acme-rt", "type": "refresh_token",
                                 "client_id": "app", "sub": "alice"})  # fmt: skip
    await beta.tenant.register({"token": "beta-rt", "type": "refresh_token",
                                "client_id": "app", "sub": "alice"})  # fmt: skip
    beta_jwt = RSA.sign(access_claims(beta.tenant.issuer))
    assert (await gtr(world.tenant, sub_id("alice"))).status_code == 204
    assert not await world.active("acme-rt")
    assert await beta.active("beta-rt")
    assert await beta.active(beta_jwt)
    assert [e for e in await beta.tenant.events() if e["type"] == "revoked"] == []


async def test_idempotent(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    jwts = await alice_everywhere(world)
    assert (await gtr(world.tenant, sub_id("alice"))).status_code == 204
    again = await gtr(world.tenant, sub_id("alice"))
    assert (again.status_code, again.content) == (204, b"")
    for token in (*ALICE, jwts["alice_jwt"]):
        assert not await world.active(token), token
    events = await world.tenant.events()
    assert [(e["type"], e["count"]) for e in events if e["type"] == "revoked"] == [
        ("revoked", 5),
        ("revoked", 0),
    ]
    assert len([e for e in events if e["type"] == "session_ended"]) == 1


async def test_an_unknown_subject_is_204(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    r = await gtr(world.tenant, sub_id("nobody"))
    assert (r.status_code, r.content) == (204, b"")
    # Its JWTs fall all the same: the service never saw them.
    jwt = RSA.sign(access_claims(world.tenant.issuer, sub="nobody"))
    assert not await world.active(jwt)


# --- subject identifiers (RFC 9493) -------------------------------------------------------


async def test_iss_sub_with_the_issuer_or_an_alias(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http, issuer_aliases=["https://login.example.com/acme"])
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"},
        {"token": "rt-2", "type": "refresh_token", "client_id": "app", "sub": "bob"},
    )
    issuer = world.tenant.issuer.upper().replace("/T/ACME", "/t/acme") + "/"
    r = await gtr(world.tenant, sub_id("", "iss_sub", iss=issuer, sub="alice"))
    assert r.status_code == 204, r.text
    assert not await world.active("rt-1")
    alias = "https://login.example.com/acme"
    r = await gtr(world.tenant, sub_id("", "iss_sub", iss=alias, sub="bob"))
    assert r.status_code == 204, r.text
    assert not await world.active("rt-2")


@pytest.mark.parametrize(
    "body",
    [
        sub_id("", "iss_sub", iss="https://elsewhere.example.com", sub="alice"),
        sub_id("", "iss_sub", iss="not a url", sub="alice"),
        sub_id("", "email", email="alice@example.com"),  # not accepted by the tenant
        sub_id("", "did", url="did:example:123"),
        {"sub_id": {"format": "opaque", "id": "alice", "email": "alice@example.com"}},
        {"sub_id": {"format": "opaque", "id": ""}},
        {"sub_id": {"format": "opaque", "id": 7}},
        {"sub_id": {"format": "opaque", "id": "x" * 256}},
        {"sub_id": {"id": "alice"}},
        {"sub_id": "alice"},
        {"subject": {"format": "opaque", "id": "alice"}},
        ["alice"],
    ],
)
async def test_a_subject_identifier_it_cannot_use_is_400(
    http: httpx.AsyncClient, body: Any
) -> None:
    world = await gtr_world(http)
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"}
    )
    r = await gtr(world.tenant, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert await world.active("rt-1")
    assert await world.tenant.events() == []


async def test_a_format_the_tenant_allows_names_the_sub(http: httpx.AsyncClient) -> None:
    world = await gtr_world(
        http, global_revocation={"enabled": True, "subject_formats": ["email", "iss_sub"]}
    )
    await world.tenant.register({"token": "rt-1", "type": "refresh_token",
                                 "client_id": "app", "sub": "alice@example.com"})  # fmt: skip
    opaque = await gtr(world.tenant, sub_id("alice@example.com"))
    assert opaque.status_code == 400  # opaque is no longer accepted
    r = await gtr(world.tenant, sub_id("", "email", email="alice@example.com"))
    assert r.status_code == 204, r.text
    assert not await world.active("rt-1")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"sub_id=alice", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b'{"sub_id": {"format": "opaque", "id": "a"}, "sub_id": {}}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'{"sub_id": {"format": "opaque", "id": "a"}}', "application/json; charset=latin-1"),
    ],
)
async def test_a_body_that_is_not_one_json_object_is_400(
    http: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    world = await gtr_world(http)
    headers = {**world.tenant.headers, **basic("idp", SECRET), "Content-Type": content_type}
    r = await http.post(PATH, content=content, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"


# --- who may call -------------------------------------------------------------------------


async def test_authentication_and_scope(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"}
    )
    none = await gtr(world.tenant, sub_id("alice"), auth={})
    assert (none.status_code, none.json()["error"]) == (401, "invalid_client")
    wrong = await gtr(world.tenant, sub_id("alice"), auth=basic("idp", "wrong-secret-0123"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic realm=")
    assert "client_auth_id" in wrong.json()
    public = await gtr(world.tenant, {**sub_id("alice"), "client_id": "spa"}, auth={})
    assert public.status_code == 401
    no_scope = await gtr(world.tenant, sub_id("alice"), auth=world.app)
    assert (no_scope.status_code, no_scope.json()["error"]) == (403, "insufficient_scope")
    assert await world.active("rt-1")
    # client_secret_post: the parameters as members of the JSON body.
    await world.tenant.client("tool", secret=SECRET, method="client_secret_post", scope=SCOPE)
    body = {**sub_id("alice"), "client_id": "tool", "client_secret": SECRET}
    assert (await gtr(world.tenant, body, auth={})).status_code == 204
    assert not await world.active("rt-1")


async def test_failed_authentications_are_limited(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http, rate_limits={"per_client_per_minute": 2})
    for _ in range(2):
        r = await gtr(world.tenant, sub_id("alice"), auth=basic("idp", "wrong-secret-0123"))
        assert r.status_code == 401
    limited = await gtr(world.tenant, sub_id("alice"))
    assert limited.status_code == 429
    assert "retry-after" in limited.headers


async def test_a_bearer_access_token_with_the_scope(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"},
        {"token": "tool-at", "type": "access_token", "client_id": "idp", "scope": SCOPE},
        {"token": "read-at", "type": "access_token", "client_id": "idp", "scope": "read"},
    )
    unknown = await gtr(world.tenant, sub_id("alice"), auth={"Authorization": "Bearer nope"})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_token")
    assert unknown.headers["www-authenticate"].startswith("Bearer realm=")
    narrow = await gtr(world.tenant, sub_id("alice"), auth={"Authorization": "Bearer read-at"})
    assert (narrow.status_code, narrow.json()["error"]) == (403, "insufficient_scope")
    assert 'error="insufficient_scope"' in narrow.headers["www-authenticate"]
    assert await world.active("rt-1")
    jwt = RSA.sign(access_claims(world.tenant.issuer, client_id="idp", scope=SCOPE))
    r = await gtr(world.tenant, sub_id("alice"), auth={"Authorization": f"Bearer {jwt}"})
    assert r.status_code == 204, r.text
    assert not await world.active("rt-1")
    r = await gtr(world.tenant, sub_id("bob"), auth={"Authorization": "Bearer tool-at"})
    assert r.status_code == 204, r.text


async def test_disabled_is_404_and_left_out_of_discovery(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http, global_revocation={"enabled": False})
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"}
    )
    assert (await gtr(world.tenant, sub_id("alice"))).status_code == 404
    assert await world.active("rt-1")
    discovery = await http.get("/.well-known/openid-configuration", headers=world.tenant.headers)
    assert "global_token_revocation_endpoint" not in discovery.json()

    await world.tenant.patch({"global_revocation": {"enabled": True}})
    metadata = (
        await http.get("/.well-known/oauth-authorization-server", headers=world.tenant.headers)
    ).json()
    assert metadata["global_token_revocation_endpoint"] == f"{world.tenant.issuer}{PATH}"
    assert metadata["global_token_revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "Bearer",
    ]


async def test_served_below_the_issuer(http: httpx.AsyncClient) -> None:
    world = await gtr_world(http)
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"}
    )
    r = await http.post(
        f"{world.tenant.issuer}{PATH}", json=sub_id("alice"), headers=basic("idp", SECRET)
    )
    assert r.status_code == 204, r.text
    assert not await world.active("rt-1")


# --- plugins --------------------------------------------------------------------------


async def test_plugins_see_it_and_may_veto(http: httpx.AsyncClient) -> None:
    _probe.CALLS.clear()
    probe = {"endpoints": ["global_revocation"], "pre_revoke": {"veto": "not this one"}}
    world = await gtr_world(http, plugins={"enabled": [{"name": "probe_a", "config": probe}]})
    await world.tenant.register(
        {"token": "rt-1", "type": "refresh_token", "client_id": "app", "sub": "alice"}
    )
    r = await gtr(world.tenant, sub_id("alice"))
    assert (r.status_code, r.json()["error"]) == (422, "revocation_refused")
    assert await world.active("rt-1")
    [call] = _probe.calls("pre_revoke")
    assert call["context"]["endpoint"] == "global_revocation"
    assert call["context"]["params"] == {"sub_id.format": "opaque", "sub_id.id": "alice"}
    assert call["args"]["plan"]["cause"] == "global_revocation"
    assert [e["type"] for e in await world.tenant.events()] == ["plugin_veto"]

    await world.tenant.patch(
        {"plugins": {"enabled": [{"name": "probe_a", "config": {**probe, "pre_revoke": None}}]}}
    )
    _probe.CALLS.clear()
    assert (await gtr(world.tenant, sub_id("alice"))).status_code == 204
    [after] = _probe.calls("post_revoke")
    assert after["args"]["outcome"]["count"] == 1
    assert not await world.active("rt-1")
    _probe.CALLS.clear()
