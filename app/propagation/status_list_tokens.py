"""Signed Status List Tokens (the IETF OAuth Token Status List draft, section 5.1),
built from the store and kept per process.

A token is built from the list's revoked indexes (``Store.revoked_status_indexes``) and
signed with the tenant's current key (``app.propagation.signing_keys``). Each process
keeps the last token of each (tenant, list) with the tenant's ``Store.events_stamp``
read before the build, and builds again once the stamp moved: every revocation appends
events in its transaction, so a list is rebuilt at its first request after a revocation
by any process, and a read never waits on a revocation that is not there. Where the
backend cannot tell (stamp None) a token is kept at most ``BLIND_S``. A token is also
reissued once it is ``ttl`` old, so that one served always has ``ttl`` to go before its
``exp``: a relying party that caches it for ``ttl`` never holds an expired token.

One build at a time per list and process: requests that arrive while one runs wait for
it, and take a token whose build started after they arrived (it holds every revocation
committed before they arrived) without building again, so a busy list costs one build
per wave of requests, not one per request. Compression (the costly part of a large
list) runs on a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import time
from dataclasses import dataclass, field

from app.directory import Directory, TenantView
from app.process_caches import ProcessCaches
from app.propagation import status_bits
from app.propagation.signing_keys import sign
from app.propagation.status_indexes import LIST_SIZE, aggregation_uri, list_count, list_uri
from app.services import Services
from app.types import TenantId

TYP = "statuslist+jwt"
BLIND_S = 1.0
"""How long a token is kept while the store cannot tell whether events moved."""
LIFETIME_TTLS = 2
"""A token's ``exp`` is this many ``ttl`` after its ``iat``; it is reissued after one."""
MAX_KEPT = 1024
"""Tokens kept per process (a large list's token is some 100 KiB); past it, the one
built longest ago goes."""

ListKey = tuple[TenantId, bytes, int]
"""(tenant id, its key salt, list number): a tenant deleted and created again under the
same id has another salt, so it never sees the old tenant's tokens."""


@dataclass(frozen=True, slots=True)
class StatusListToken:
    token: str
    etag: str
    gzipped: bytes
    """The token with the gzip content coding, which the draft asks responses to use."""
    iat: int
    ttl: int
    issuer: str
    stamp: int | None
    started: float
    """``time.monotonic()`` when its build began to read the store."""

    def current_for(self, tenant: TenantView, now: int) -> bool:
        """Built under the tenant's settings, and not yet due for reissue."""
        s = tenant.settings
        return (
            s.status_list_ttl_s == self.ttl
            and s.issuer == self.issuer
            and now < self.iat + self.ttl
        )

    def fresh(self, tenant: TenantView, stamp: int | None, now: int, monotonic: float) -> bool:
        if not self.current_for(tenant, now):
            return False
        if stamp is None:
            return self.stamp is None and monotonic - self.started < BLIND_S
        return stamp == self.stamp


@dataclass(slots=True)
class _Cache:
    """One process's tokens and list counts, for one ``Directory`` (one store)."""

    tokens: dict[ListKey, StatusListToken] = field(default_factory=dict)
    builds: dict[ListKey, asyncio.Lock] = field(default_factory=dict)
    counts: dict[tuple[TenantId, bytes], int] = field(default_factory=dict)

    def keep(self, key: ListKey, token: StatusListToken) -> None:
        self.tokens.pop(key, None)  # to the end: dicts keep insertion order
        if len(self.tokens) >= MAX_KEPT:
            del self.tokens[next(iter(self.tokens))]
        self.tokens[key] = token


_caches: ProcessCaches[Directory, _Cache] = ProcessCaches(_Cache)


def _cache(services: Services) -> _Cache:
    return _caches.of(services.directory)


def _tenant_key(tenant: TenantView) -> tuple[TenantId, bytes]:
    return tenant.tenant_id, tenant.record.key_salt


async def lists(services: Services, tenant: TenantView, wanted: int | None = None) -> int:
    """How many lists the tenant has. Counts only grow: with ``wanted``, the store is
    read only when it is beyond the count this process last saw."""
    cache = _cache(services)
    key = _tenant_key(tenant)
    known = cache.counts.get(key, 0)
    if wanted is not None and wanted <= known:
        return known
    count = list_count(await services.store.allocated_status_indexes(tenant.tenant_id))
    cache.counts[key] = max(known, count)
    return cache.counts[key]


async def current(services: Services, tenant: TenantView, number: int) -> StatusListToken:
    """The token of list ``number`` (which exists), built again where it is stale."""
    arrived = time.monotonic()
    cache = _cache(services)
    key = (*_tenant_key(tenant), number)
    found = _fresh(services, tenant, cache.tokens.get(key))
    if found is not None:
        return found
    async with cache.builds.setdefault(key, asyncio.Lock()):
        found = cache.tokens.get(key)
        if (
            found is not None
            and found.started >= arrived
            and found.current_for(tenant, services.clock())
        ):
            return found  # built while we waited, from a read after we arrived
        found = _fresh(services, tenant, found)
        if found is None:
            stamp = services.store.events_stamp(tenant.tenant_id)
            found = await build(services, tenant, number, stamp)
            cache.keep(key, found)
        return found


def _fresh(
    services: Services, tenant: TenantView, token: StatusListToken | None
) -> StatusListToken | None:
    stamp = services.store.events_stamp(tenant.tenant_id)
    if token is None or not token.fresh(tenant, stamp, services.clock(), time.monotonic()):
        return None
    return token


async def build(
    services: Services, tenant: TenantView, number: int, stamp: int | None
) -> StatusListToken:
    """Read the list's revoked indexes and sign a new token; ``stamp``: the tenant's
    events stamp read before the read."""
    started = time.monotonic()
    low = (number - 1) * LIST_SIZE
    revoked = await services.store.revoked_status_indexes(tenant.tenant_id, low, low + LIST_SIZE)
    lst = await asyncio.to_thread(status_bits.encode, [g - low for g in revoked], LIST_SIZE)
    s = tenant.settings
    now = services.clock()
    claims = {
        "iss": s.issuer,
        "sub": list_uri(tenant, number),
        "iat": now,
        "exp": now + LIFETIME_TTLS * s.status_list_ttl_s,
        "ttl": s.status_list_ttl_s,
        "status_list": {
            "bits": status_bits.BITS,
            "lst": lst,
            "aggregation_uri": aggregation_uri(tenant),
        },
    }
    token = await sign(services, tenant, claims, TYP)
    digest = hashlib.sha256(token.encode("ascii")).digest()[:18]
    etag = '"' + base64.urlsafe_b64encode(digest).decode("ascii") + '"'
    gzipped = await asyncio.to_thread(gzip.compress, token.encode("ascii"), 6, mtime=0)
    return StatusListToken(token, etag, gzipped, now, s.status_list_ttl_s, s.issuer, stamp, started)
