"""The soak's traffic: the token population, the operations of the mix, what each checks.

A credential is an integer: ``unit * UNIT_SIZE + slot``. Its token is 43 characters of
base64url derived from the run's seed (so the generator keeps integers, not strings, for
the million credentials of an hour), its client is ``unit % clients``, and its slot says
what it is (``SLOTS``): three stand-alone access tokens, two stand-alone refresh tokens and
two grants of a refresh token and two access tokens. The tenant's cascade is ``grant``: a
stand-alone credential (no ``grant_id``) falls alone, a grant's refresh token takes its
access tokens with it.

Every operation leases what it works on: a token chosen for revocation leaves the live
pool before its request is sent, and a live token being introspected is out of the pool
until the answer is in, so no two requests race on one token and every answer has one
right value. A revocation acknowledged with 200 moves its credentials (a grant's three)
to the revoked set, which the end of the run introspects in full.
"""

from __future__ import annotations

import array
import asyncio
import base64
import hashlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from soak_http import Answer, HttpClient, TransportFailure

UNIT_SIZE = 11
SLOTS = (
    ["access_token"] * 3
    + ["refresh_token"] * 2
    + ["refresh_token", "access_token", "access_token"] * 2
)
"""Slot → token type. Slots 5 and 8 are the refresh tokens of the unit's two grants; the
two slots after each are that grant's access tokens."""
STANDALONE_ACCESS = (0, 1, 2)
STANDALONE_REFRESH = (3, 4)
GRANT_HEADS = (5, 8)
GRANT_SIZE = 3
UNITS_PER_BATCH = 4
"""A registration op registers this many units (44 credentials): with ``MIX`` below, at least
1.3 times what the revocations take down, so the live pools never run dry."""
TOKEN_LIFETIME_S = 2 * 86_400
CHURN_CLIENTS = 8
EVENTS_PAGE = 1000
CLIENT_PREFIX = "soak-client-"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_ERROR_SAMPLES = 20

MIX: dict[str, float] = {
    "revoke_access": 14.0,
    "revoke_refresh": 8.0,
    "revoke_grant": 8.0,
    "revoke_again": 2.0,
    "introspect_live": 30.0,
    "introspect_revoked": 30.0,
    "register": 1.5,
    "events": 4.0,
    "admin_write": 2.5,
}
"""Per cent of arrivals. ``revoke_grant``: a grant's refresh token, the cascade takes its
two access tokens; ``revoke_again``: an already revoked token (200, nothing changes);
``admin_write``: in turn a churn client's create, replace and delete (``PUT``, ``PUT``,
``DELETE``) and a settings ``PATCH``; ``events``: the next page of the admin events
feed, read by one follower."""


def token_of(seed: bytes, credential: int) -> str:
    digest = hashlib.sha256(seed + credential.to_bytes(8, "big")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_type_of(credential: int) -> str:
    return SLOTS[credential % UNIT_SIZE]


def members(head: int) -> range:
    """The credentials of the grant whose refresh token is ``head``."""
    return range(head, head + GRANT_SIZE)


def as_form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def as_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Pool:
    """Credentials (or grant heads) free to be picked; random picks in O(1)."""

    def __init__(self) -> None:
        self._items: list[int] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: int) -> None:
        self._items.append(item)

    def take(self, rng: random.Random) -> int | None:
        if not self._items:
            return None
        i = rng.randrange(len(self._items))
        items = self._items
        items[i], items[-1] = items[-1], items[i]
        return items.pop()

    def sample(self, rng: random.Random, n: int) -> list[int]:
        return rng.sample(self._items, min(n, len(self._items)))


@dataclass
class Interval:
    """What the operations of one sampling interval gave."""

    latencies_ms: dict[str, array.array[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    """``"op status"`` (or ``"op wrong"``, ``"op transport"``, ``"op exception"``) → count."""
    substituted: Counter[str] = field(default_factory=Counter)
    lag_max_ms: float = 0.0
    """How late the generator sent a request after its scheduled time (open loop)."""
    in_flight_max: int = 0


@dataclass
class Tally:
    """What the whole run acknowledged, for the checks at its end."""

    revocations: int = 0
    """Revocations of live credentials answered 200 (each must be one ``revoked`` event)."""
    credentials_revoked: int = 0
    events_revoked: int = 0
    events_credentials: int = 0
    last_event_id: int = 0
    wrong: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)


class Traffic:
    """The mix against one tenant: the population's state and the operations."""

    def __init__(
        self,
        client: HttpClient,
        *,
        tenant_id: str,
        client_secrets: Sequence[str],
        seed: bytes,
        admin_key: str,
    ) -> None:
        self.http = client
        self.tenant_id = tenant_id
        self.seed = seed
        self.rng = random.Random(seed)
        self.clients = [f"{CLIENT_PREFIX}{i}" for i in range(len(client_secrets))]
        self.auth = [basic(c, s) for c, s in zip(self.clients, client_secrets, strict=True)]
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.admin_json = {**self.admin, "Content-Type": JSON}
        self.form = [
            {"Tenant-ID": tenant_id, "Authorization": a, "Content-Type": FORM} for a in self.auth
        ]
        self.ops: list[str] = list(MIX)
        self.weights: list[float] = [MIX[o] for o in self.ops]
        self.next_unit = 0
        self.live_access = Pool()
        self.live_refresh = Pool()
        self.live_grants = Pool()
        self.revoked = array.array("q")
        self.tally = Tally()
        self.interval = Interval()
        self.in_flight = 0
        self._events_busy = False
        self._churn_busy: set[int] = set()
        self._churn_step = [0] * CHURN_CLIENTS
        self._admin_turn = 0
        self.handlers: dict[str, Callable[[], Awaitable[None]]] = {
            "revoke_access": lambda: self._revoke_single(self.live_access, "revoke_access"),
            "revoke_refresh": lambda: self._revoke_single(self.live_refresh, "revoke_refresh"),
            "revoke_grant": self._revoke_grant,
            "revoke_again": self._revoke_again,
            "introspect_live": self._introspect_live,
            "introspect_revoked": self._introspect_revoked,
            "register": self.register_batch,
            "events": self._events,
            "admin_write": self._admin_write,
        }

    # --- the population ---------------------------------------------------------------

    def client_of(self, credential: int) -> int:
        return (credential // UNIT_SIZE) % len(self.clients)

    def credential_json(self, credential: int, now: int) -> dict[str, Any]:
        unit, slot = divmod(credential, UNIT_SIZE)
        c: dict[str, Any] = {
            "token": token_of(self.seed, credential),
            "type": SLOTS[slot],
            "client_id": self.clients[self.client_of(credential)],
            "exp": now + TOKEN_LIFETIME_S,
            "iat": now,
            "sub": f"user-{unit}",
        }
        for head in GRANT_HEADS:
            if head <= slot < head + GRANT_SIZE:
                c["grant_id"] = f"soak-g{unit}.{head}"
        return c

    def _admit(self, units: range) -> None:
        for unit in units:
            base = unit * UNIT_SIZE
            for slot in STANDALONE_ACCESS:
                self.live_access.add(base + slot)
            for slot in STANDALONE_REFRESH:
                self.live_refresh.add(base + slot)
            for slot in GRANT_HEADS:
                self.live_grants.add(base + slot)

    async def register_units(self, n: int) -> bool:
        """Register ``n`` new units in one request; their credentials join the pools."""
        units = range(self.next_unit, self.next_unit + n)
        self.next_unit += n
        now = int(time.time())
        body = [
            self.credential_json(c, now)
            for c in range(units.start * UNIT_SIZE, units.stop * UNIT_SIZE)
        ]
        response = await self._send(
            "register",
            "POST",
            f"/admin/v1/tenants/{self.tenant_id}/credentials",
            headers=self.admin_json,
            body=as_json(body),
            ok=(200, 201),
        )
        if response is None:
            return False
        if response.json().get("registered") != len(body):
            self._wrong("register", f"registered {response.json()} of {len(body)}")
            return False
        self._admit(units)
        return True

    async def register_batch(self) -> None:
        await self.register_units(UNITS_PER_BATCH)

    @property
    def live_credentials(self) -> int:
        return len(self.live_access) + len(self.live_refresh) + GRANT_SIZE * len(self.live_grants)

    # --- one arrival -------------------------------------------------------------------

    def choose(self) -> str:
        return self.rng.choices(self.ops, self.weights)[0]

    async def run(self, op: str, scheduled: float | None = None) -> None:
        """One operation; ``scheduled`` (loop time) for the open loop's lag."""
        if scheduled is not None:
            lag = (asyncio.get_running_loop().time() - scheduled) * 1000
            self.interval.lag_max_ms = max(self.interval.lag_max_ms, lag)
        self.in_flight += 1
        self.interval.in_flight_max = max(self.interval.in_flight_max, self.in_flight)
        try:
            await self.handlers[op]()
        except Exception as exc:  # an answer the checks did not foresee: counted, not fatal
            self._error(op, "exception", f"{type(exc).__name__}: {exc}")
        finally:
            self.in_flight -= 1

    def drop(self) -> None:
        """An arrival not sent: too many requests were open already."""
        self._error("arrival", "overload", "dropped: too many requests open")

    def rotate(self) -> Interval:
        done, self.interval = self.interval, Interval(in_flight_max=self.in_flight)
        return done

    # --- recording ---------------------------------------------------------------------

    def _latency(self, op: str, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        bucket = self.interval.latencies_ms.get(op)
        if bucket is None:
            bucket = self.interval.latencies_ms[op] = array.array("d")
        bucket.append(ms)

    def _error(self, op: str, kind: str, detail: str) -> None:
        self.interval.errors[f"{op} {kind}"] += 1
        self.tally.errors += 1
        if len(self.tally.samples) < MAX_ERROR_SAMPLES:
            self.tally.samples.append(f"{op} {kind}: {detail[:300]}")

    def _wrong(self, op: str, detail: str) -> None:
        self.tally.wrong += 1
        self._error(op, "wrong", detail)

    def _substitute(self, op: str, instead: str) -> Awaitable[None]:
        self.interval.substituted[op] += 1
        return self.handlers[instead]()

    async def _send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        body: bytes | None = None,
        ok: Sequence[int] = (200,),
    ) -> Answer | None:
        """The request, its latency recorded; None (an error recorded) unless ``ok``."""
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, headers, body)
        except TransportFailure as exc:
            self._latency(op, started)
            self._error(op, "transport", str(exc))
            return None
        self._latency(op, started)
        if response.status not in ok:
            self._error(op, str(response.status), response.text)
            return None
        return response

    # --- revocation --------------------------------------------------------------------

    async def revoke(self, op: str, credential: int) -> bool:
        """Revoke ``credential`` as its own client: True on an empty 200."""
        response = await self._send(
            op,
            "POST",
            "/token/revoke",
            headers=self.form[self.client_of(credential)],
            body=as_form(
                token=token_of(self.seed, credential), token_type_hint=token_type_of(credential)
            ),
        )
        if response is None:
            return False
        if response.body:
            self._wrong(op, f"a revocation answered a body: {response.text}")
            return False
        return True

    async def _revoke_single(self, pool: Pool, op: str) -> None:
        credential = pool.take(self.rng)
        if credential is None:
            return await self._substitute(op, "register")
        if await self.revoke(op, credential):
            self.revoked.append(credential)
            self.tally.revocations += 1
            self.tally.credentials_revoked += 1
        # An error leaves the credential out of both sets: its state is not known.

    async def _revoke_grant(self) -> None:
        head = self.live_grants.take(self.rng)
        if head is None:
            return await self._substitute("revoke_grant", "register")
        if await self.revoke("revoke_grant", head):
            self.revoked.extend(members(head))
            self.tally.revocations += 1
            self.tally.credentials_revoked += GRANT_SIZE

    async def _revoke_again(self) -> None:
        if not self.revoked:
            return await self._substitute("revoke_again", "introspect_live")
        await self.revoke("revoke_again", self.revoked[self.rng.randrange(len(self.revoked))])

    # --- introspection -----------------------------------------------------------------

    async def introspect(self, op: str, credential: int, *, active: bool) -> bool:
        """Introspect ``credential`` (as any of the clients); True if the answer is right:
        ``{"active": false}``, or active with the credential's client and type."""
        response = await self._send(
            op,
            "POST",
            "/token/introspect",
            headers=self.form[self.rng.randrange(len(self.form))],
            body=as_form(token=token_of(self.seed, credential)),
        )
        if response is None:
            return False
        try:
            body = response.json()
        except json.JSONDecodeError:
            self._wrong(op, f"not JSON: {response.text}")
            return False
        if not active:
            if body != {"active": False}:
                self._wrong(op, f"a revoked {token_type_of(credential)} answered {body}")
                return False
            return True
        kind = token_type_of(credential)
        expected = {
            "active": True,
            "token_type": "Bearer" if kind == "access_token" else kind,
            "client_id": self.clients[self.client_of(credential)],
        }
        if {k: body.get(k) for k in expected} != expected:
            self._wrong(op, f"a live {kind} answered {body}")
            return False
        return True

    async def _introspect_live(self) -> None:
        pools = [p for p in (self.live_access, self.live_refresh, self.live_grants) if p]
        if not pools:
            return await self._substitute("introspect_live", "register")
        pool = self.rng.choice(pools)
        leased = pool.take(self.rng)
        assert leased is not None
        credential = leased
        if pool is self.live_grants:
            credential = leased + self.rng.randrange(GRANT_SIZE)
        try:
            await self.introspect("introspect_live", credential, active=True)
        finally:
            pool.add(leased)

    async def _introspect_revoked(self) -> None:
        if not self.revoked:
            return await self._substitute("introspect_revoked", "introspect_live")
        credential = self.revoked[self.rng.randrange(len(self.revoked))]
        await self.introspect("introspect_revoked", credential, active=False)

    # --- the admin API -----------------------------------------------------------------

    async def _events(self) -> None:
        if self._events_busy:
            return await self._substitute("events", "introspect_revoked")
        self._events_busy = True
        try:
            await self.follow_events("events")
        finally:
            self._events_busy = False

    async def follow_events(self, op: str) -> int:
        """Read the next page of the events feed and count it; the events read."""
        response = await self._send(
            op,
            "GET",
            f"/admin/v1/tenants/{self.tenant_id}/events?after={self.tally.last_event_id}"
            f"&limit={EVENTS_PAGE}",
            headers=self.admin,
        )
        if response is None:
            return 0
        page = response.json()
        for event in page["events"]:
            event_id = int(event["id"])
            if event_id <= self.tally.last_event_id:
                self._wrong(op, f"event {event_id} after cursor {self.tally.last_event_id}")
            self.tally.last_event_id = event_id
            if event["type"] == "revoked":
                self.tally.events_revoked += 1
                self.tally.events_credentials += int(event.get("count") or 0)
        return len(page["events"])

    async def _admin_write(self) -> None:
        self._admin_turn += 1
        if self._admin_turn % 4 == 0:
            return await self._patch_settings()
        free = [j for j in range(CHURN_CLIENTS) if j not in self._churn_busy]
        if not free:
            return await self._substitute("admin_write", "introspect_revoked")
        j = free[self._admin_turn % len(free)]
        self._churn_busy.add(j)
        try:
            await self._churn(j)
        finally:
            self._churn_busy.discard(j)

    async def _churn(self, j: int) -> None:
        path = f"/admin/v1/tenants/{self.tenant_id}/clients/soak-churn-{j}"
        step = self._churn_step[j]
        if step == 2:
            done = await self._send("admin_write", "DELETE", path, headers=self.admin, ok=(204,))
        else:
            body = {
                "type": "confidential",
                "token_endpoint_auth_method": "client_secret_basic",
                "client_secret": secrets.token_urlsafe(32),
                "scope": "introspect" if step == 0 else "introspect revocation_events",
            }
            done = await self._send(
                "admin_write",
                "PUT",
                path,
                headers=self.admin_json,
                body=as_json(body),
                ok=(201,) if step == 0 else (200,),
            )
        if done is not None:
            self._churn_step[j] = (step + 1) % 3

    async def _patch_settings(self) -> None:
        origins = [f"https://soak-{self._admin_turn}.example"] if self._admin_turn % 8 else None
        await self._send(
            "admin_write",
            "PATCH",
            f"/admin/v1/tenants/{self.tenant_id}",
            headers=self.admin_json,
            body=as_json({"cors": {"allowed_origins": origins}}),
        )
