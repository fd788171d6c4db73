"""The five cascade policies, row by row of the contract's table."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.world import World, make_world

# Two grants of one subject and client, and a third-party credential. ``sso-1`` is the
# subject's SSO session, which an SPID logout ends while its other tokens stay valid.
CREDENTIALS: list[dict[str, Any]] = [
    {
        "token": "g1-at",
        "type": "access_token",
        "grant_id": "g1",
        "sub": "alice",
        "device_session_id": "sso-1",
    },
    {"token": "g1-at2", "type": "access_token", "grant_id": "g1", "sub": "alice"},
    {"token": "g1-rt", "type": "refresh_token", "grant_id": "g1", "sub": "alice"},
    {"token": "g2-at", "type": "access_token", "grant_id": "g2", "sub": "alice"},
    {
        "token": "g2-rt",
        "type": "refresh_token",
        "grant_id": "g2",
        "sub": "alice",
        "device_session_id": "sso-1",
    },
    {"token": "bob-at", "type": "access_token", "grant_id": "g3", "sub": "bob"},
    {"token": "lone-at", "type": "access_token", "sub": "alice"},
]
OTHER_CLIENT = {
    "token": "other-at",
    "type": "access_token",
    "client_id": "other",
    "sub": "alice",
    "grant_id": "g9",
}
ALL = [c["token"] for c in CREDENTIALS] + ["other-at"]


async def _world(http: httpx.AsyncClient, policy: str) -> World:
    world = await make_world(http, revocation={"cascade": policy})
    await world.tenant.register(*({"client_id": "app", **c} for c in CREDENTIALS), OTHER_CLIENT)
    return world


async def _revoked_after(world: World, token: str) -> set[str]:
    r = await world.tenant.revoke(token, auth=world.app)
    assert r.status_code == 200
    return {t for t in ALL if not await world.active(t)}


CASES = [
    ("token", "g1-at", {"g1-at"}),
    ("token", "g1-rt", {"g1-rt"}),
    ("grant", "g1-at", {"g1-at", "g1-at2", "g1-rt"}),
    ("grant", "g1-rt", {"g1-at", "g1-at2", "g1-rt"}),
    ("grant", "lone-at", {"lone-at"}),  # no grant_id: stands alone
    ("subject", "g1-at", {"g1-at", "g1-at2", "g1-rt", "g2-at", "g2-rt", "lone-at"}),
    ("subject", "g2-rt", {"g1-at", "g1-at2", "g1-rt", "g2-at", "g2-rt", "lone-at"}),
    ("spid", "g1-at", {"g1-at", "g1-rt"}),  # other access tokens of the subject stay
    ("spid", "g1-rt", {"g1-rt", "g1-at", "g1-at2"}),
    ("cie", "g1-at", {"g1-at"}),  # its refresh tokens stay valid
    ("cie", "g1-rt", {"g1-rt", "g1-at", "g1-at2"}),
]


@pytest.mark.parametrize(("policy", "token", "expected"), CASES)
async def test_policy_table(
    http: httpx.AsyncClient, policy: str, token: str, expected: set[str]
) -> None:
    world = await _world(http, policy)
    assert await _revoked_after(world, token) == expected
    revoked = [e for e in await world.tenant.events() if e["type"] == "revoked"]
    assert len(revoked) == 1
    assert revoked[0]["count"] == len(expected)
    assert revoked[0]["cause"] == policy


async def test_subject_deletes_the_grant_records_of_client_and_subject(
    http: httpx.AsyncClient,
) -> None:
    world = await _world(http, "subject")
    t = world.tenant
    for grant_id, client_id, sub in (
        ("g1", "app", "alice"),
        ("g3", "app", "bob"),
        ("g9", "other", "alice"),
    ):
        r = await http.put(
            f"/admin/v1/tenants/{t.tenant_id}/grants/{grant_id}",
            json={"client_id": client_id, "sub": sub, "scope": "openid"},
            headers={"Authorization": "Bearer test-operator-key-0123456789"},
        )
        assert r.status_code in (200, 201), r.text
    await t.revoke("g1-at", auth=world.app)
    r = await http.get(
        f"/admin/v1/tenants/{t.tenant_id}/subjects/alice/clients",
        headers={"Authorization": "Bearer test-operator-key-0123456789"},
    )
    clients = {c["client_id"]: c for c in r.json()["clients"]}
    assert "app" not in clients  # no grant record, no live credential left
    assert clients["other"]["grants"] == 1


async def test_spid_access_token_revocation_ends_the_session(http: httpx.AsyncClient) -> None:
    world = await _world(http, "spid")
    await world.tenant.revoke("g1-at", auth=world.app)
    events = await world.tenant.events()
    ended = [e for e in events if e["type"] == "session_ended"]
    assert len(ended) == 1
    assert (ended[0]["sub"], ended[0]["device_session_id"], ended[0]["grant_id"]) == (
        "alice",
        "sso-1",
        "g1",
    )


async def test_spid_logout_keeps_the_sessions_other_tokens_valid_everywhere(
    http: httpx.AsyncClient,
) -> None:
    """SPID: "other tokens of the subject stay valid", those bound to the ended session
    too: introspection and a later revocation agree that they are live."""
    world = await _world(http, "spid")
    await world.tenant.register(
        {
            "token": "other-rt",
            "type": "refresh_token",
            "client_id": "other",
            "sub": "alice",
            "device_session_id": "sso-1",
        }
    )
    await world.tenant.revoke("g1-at", auth=world.app)
    assert await world.active("g2-rt")
    assert await world.active("other-rt")
    assert (await world.tenant.revoke("g2-rt", auth=world.app)).status_code == 200
    revoked = [e for e in await world.tenant.events() if e["type"] == "revoked"]
    assert [(e["grant_id"], e["count"]) for e in revoked] == [("g1", 2), ("g2", 2)]


async def test_cie_refresh_revocation_does_not_end_a_session(http: httpx.AsyncClient) -> None:
    world = await _world(http, "cie")
    await world.tenant.revoke("g1-rt", auth=world.app)
    assert [e["type"] for e in await world.tenant.events()] == ["revoked"]


async def test_changing_the_policy_takes_effect_on_the_next_request(
    http: httpx.AsyncClient,
) -> None:
    world = await _world(http, "token")
    assert await _revoked_after(world, "g1-at") == {"g1-at"}
    await world.tenant.patch({"revocation": {"cascade": "grant"}})
    assert await _revoked_after(world, "g2-at") == {"g1-at", "g2-at", "g2-rt"}
