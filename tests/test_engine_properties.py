"""Properties of the revocation engine, through the HTTP API, on every store.

(i) a credential once inactive never becomes active again, whatever is registered,
revoked or registered again afterwards; (ii) a cascade is closed under its policy: after
a revocation, every credential the policy (CONTRACT.md section 4.1) takes with the token
is inactive; (iii) revoking twice changes nothing: the same answer, no new event, the
same state.

Hypothesis draws the credentials and the operations; each example gets a tenant of its
own. In CI: SQLite, ``MAX_EXAMPLES`` per property and policy, derandomized, no example
database (about 7 s; the same on the MongoDB test server takes three times as long).
``scripts/fuzz.py --properties`` runs them longer on both stores, through
``FUZZ_PROPERTY_EXAMPLES`` and ``FUZZ_PROPERTY_STORES``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.world import SECRET, Tenant, basic, make_tenant

MAX_EXAMPLES = int(os.environ.get("FUZZ_PROPERTY_EXAMPLES", "12"))
"""Per property, policy and store."""
STORES = os.environ.get("FUZZ_PROPERTY_STORES", "sqlite").split(",")

# The ``services`` fixture (tests/conftest.py) opened on these stores only.
pytestmark = pytest.mark.parametrize("services", STORES, indirect=True)
POLICIES = ("token", "grant", "subject", "spid", "cie")
CLIENTS = ("app", "other")
TYPES = ("access_token", "refresh_token", "device_secret")

PROPERTY_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The store is the test's; each example makes a tenant of its own in it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_tenant_ids = itertools.count()

# Few values for each field, so that credentials share grants, subjects and sessions.
credential_fields = st.fixed_dictionaries(
    {
        "type": st.sampled_from(TYPES),
        "client_id": st.sampled_from(CLIENTS),
        "grant_id": st.sampled_from(("g0", "g1", None)),
        "sub": st.sampled_from(("alice", "bob", None)),
        "device_session_id": st.sampled_from(("d0", "d1", None)),
    }
)
credential_sets = st.lists(credential_fields, min_size=2, max_size=7)
by_policy = pytest.mark.parametrize("policy", POLICIES)


@dataclass
class Credentials:
    """One example's tenant and its credentials, ``t0``, ``t1``, … by index."""

    tenant: Tenant
    fields: list[dict[str, Any]]

    def token(self, i: int) -> str:
        return f"t{i}"

    def body(self, i: int) -> dict[str, Any]:
        given = {k: v for k, v in self.fields[i].items() if v is not None}
        return {"token": self.token(i), **given}

    async def register(self, i: int, **changed: Any) -> httpx.Response:
        body = {**self.body(i), "exp": 4_000_000_000, "iat": 1_700_000_000, **changed}
        return await self.tenant.http.post(
            f"/admin/v1/tenants/{self.tenant.tenant_id}/credentials",
            json=body,
            headers={"Authorization": "Bearer test-operator-key-0123456789"},
        )

    async def register_all(self) -> None:
        body = [
            {**self.body(i), "exp": 4_000_000_000, "iat": 1_700_000_000}
            for i in range(len(self.fields))
        ]
        r = await self.tenant.http.post(
            f"/admin/v1/tenants/{self.tenant.tenant_id}/credentials",
            json=body,
            headers={"Authorization": "Bearer test-operator-key-0123456789"},
        )
        assert r.status_code == 200, r.text

    async def revoke(self, i: int) -> httpx.Response:
        owner = basic(self.fields[i]["client_id"], SECRET)
        return await self.tenant.revoke(self.token(i), auth=owner)

    async def active(self, i: int) -> bool:
        body = await self.tenant.introspect(self.token(i), basic("rs", SECRET))
        return bool(body["active"])


async def with_credentials(
    http: httpx.AsyncClient, policy: str, fields: list[dict[str, Any]]
) -> Credentials:
    """A fresh tenant under ``policy`` with the clients the credentials name."""
    tenant = await make_tenant(
        http,
        f"prop-{next(_tenant_ids)}",
        revocation={"cascade": policy},
        rate_limits={"per_client_per_minute": 1_000_000, "per_address_per_minute": 1_000_000},
    )
    for client_id in CLIENTS:
        await tenant.client(client_id, secret=SECRET)
    await tenant.client("rs", secret=SECRET, scope="introspect")
    return Credentials(tenant, fields)


# --- (i) a credential once inactive stays inactive ------------------------------------

operations = st.lists(
    st.tuples(st.sampled_from(("register", "register_later_exp", "revoke")), st.integers(0, 6)),
    min_size=1,
    max_size=10,
)


@by_policy
@PROPERTY_SETTINGS
@given(fields=credential_sets, steps=operations)
async def test_a_revoked_credential_never_becomes_active_again(
    http: httpx.AsyncClient, policy: str, fields: list[dict[str, Any]], steps: list[Any]
) -> None:
    world = await with_credentials(http, policy, fields)
    registered: set[int] = set()
    dead: set[int] = set()
    for op, index in steps:
        i = index % len(fields)
        if op == "register":
            r = await world.register(i)
            assert r.status_code == 200, r.text
            registered.add(i)
        elif op == "register_later_exp" and i in registered:
            # The same token with other fields: refused, and nothing comes back.
            r = await world.register(i, exp=4_000_000_100)
            assert r.status_code in (200, 400, 409), r.text
        elif op == "revoke":
            r = await world.revoke(i)
            assert r.status_code == 200, r.text
        for j in sorted(registered):
            active = await world.active(j)
            assert not (active and j in dead), f"t{j} came back after {op} t{i}"
            if not active:
                dead.add(j)


# --- (ii) a cascade is closed under its policy ----------------------------------------

Fields = dict[str, Any]


def same(key: str, a: Fields, b: Fields) -> bool:
    return a[key] is not None and a[key] == b[key]


def taken_with(policy: str, revoked: Fields) -> Callable[[Fields], bool]:
    """What CONTRACT.md section 4.1 says falls with ``revoked``, besides itself."""
    kind = revoked["type"]
    if kind == "device_secret":
        # Its session ends: every refresh token bound to it, of any client.
        return lambda c: c["type"] == "refresh_token" and same("device_session_id", revoked, c)
    if policy == "grant":
        return lambda c: same("grant_id", revoked, c)
    if policy == "subject":
        return lambda c: (
            c["type"] != "device_secret"
            and c["client_id"] == revoked["client_id"]
            and same("sub", revoked, c)
        )
    if policy in ("spid", "cie") and kind == "refresh_token":
        return lambda c: c["type"] == "access_token" and same("grant_id", revoked, c)
    if policy == "spid":
        return lambda c: c["type"] == "refresh_token" and same("grant_id", revoked, c)
    return lambda c: False


@by_policy
@PROPERTY_SETTINGS
@given(fields=credential_sets)
async def test_a_cascade_is_closed_under_its_policy(
    http: httpx.AsyncClient, policy: str, fields: list[dict[str, Any]]
) -> None:
    world = await with_credentials(http, policy, fields)
    await world.register_all()
    revoked = 0
    r = await world.revoke(revoked)
    assert r.status_code == 200, r.text
    falls = taken_with(policy, fields[revoked])
    for i, c in enumerate(fields):
        if i == revoked or falls(c):
            assert not await world.active(i), (
                f"t{i} {c} survived revoking t{revoked} under {policy}"
            )


# --- (iii) revoking twice changes nothing ----------------------------------------------


@by_policy
@PROPERTY_SETTINGS
@given(fields=credential_sets)
async def test_revoking_twice_changes_nothing(
    http: httpx.AsyncClient, policy: str, fields: list[dict[str, Any]]
) -> None:
    world = await with_credentials(http, policy, fields)
    await world.register_all()
    target = 0

    async def state() -> tuple[list[dict[str, Any]], list[bool]]:
        events = await world.tenant.events()
        return events, [await world.active(i) for i in range(len(fields))]

    first = await world.revoke(target)
    after_first = await state()
    second = await world.revoke(target)
    assert (second.status_code, second.content) == (first.status_code, first.content)
    assert await state() == after_first
