"""JWK sets (RFC 7517) that verify JWTs: a client's or a tenant's, inline or fetched.

One cache per process. A fetched set is kept ``ttl_s``; a ``kid`` that the cached set
lacks fetches it again (key rotation), at most once per ``min_refresh_s`` per URL so a
stream of made-up ``kid`` values cannot become a stream of fetches. When a refresh
fails, the last good set keeps serving for up to ``stale_s``. Concurrent misses on one
URL share one fetch; a failed fetch is not tried again within ``min_refresh_s`` either.
Inline sets are parsed once. Only public signature keys are returned (``use`` absent or
``sig``; ``key_ops``, when given, allowing ``verify``): a key set is readable by whoever
can read its URL or the client, so a symmetric (``oct``) key or one with its private
half in the set could sign for anyone, and is skipped, as are keys PyJWT cannot use.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt

from app.errors import FieldError
from app.outbound import Fetcher, FetchRefused, HostRules

DEFAULT_TTL_S = 300
DEFAULT_MIN_REFRESH_S = 10
DEFAULT_STALE_S = 3_600
MAX_KEYS = 100
MAX_ENTRIES = 4_096
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
"""JWK members that carry secret material (RFC 7518 section 6)."""


class KeySetUnavailable(Exception):
    """No usable key set: ``str()`` says why (for the log line, never for the client)."""


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the keys are: an inline set, or a URL to fetch it from."""

    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None


@dataclass(slots=True)
class _Fetched:
    keys: tuple[jwt.PyJWK, ...] = ()
    fetched_at: float = float("-inf")
    tried_at: float = float("-inf")
    generation: int = 0
    failure: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def parse(document: Any) -> tuple[jwt.PyJWK, ...]:
    """The usable signature keys of a JWK set; ``KeySetUnavailable`` when there are none."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeySetUnavailable("not a JWK set (an object with a list 'keys')")
    raw = document["keys"]
    if len(raw) > MAX_KEYS:
        raise KeySetUnavailable(f"more than {MAX_KEYS} keys")
    keys: list[jwt.PyJWK] = []
    for item in raw:
        if not isinstance(item, Mapping) or not _for_signatures(item):
            continue
        try:
            keys.append(jwt.PyJWK(dict(item)))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, NotImplementedError):
            continue  # NotImplementedError: "alg": "none"
    if not keys:
        raise KeySetUnavailable("the JWK set holds no usable signature key")
    return tuple(keys)


def check_public(document: Any, path: str) -> None:
    """Admin input (a client's or a tenant's ``jwks`` at ``path``): a JWK set of public
    signature keys, at least one of them usable, else ``FieldError``. A key with secret
    material is named rather than skipped as ``parse`` would: such input is readable by
    the tenant's admins and must be refused."""
    if isinstance(document, Mapping) and isinstance(document.get("keys"), list):
        for i, key in enumerate(document["keys"]):
            if isinstance(key, Mapping) and not PRIVATE_MEMBERS.isdisjoint(key):
                raise FieldError(f"{path}.keys[{i}]", "holds secret key material: give public keys")
    try:
        parse(document)
    except KeySetUnavailable as exc:
        raise FieldError(path, str(exc)) from None


def _for_signatures(item: Mapping[str, Any]) -> bool:
    if item.get("use", "sig") != "sig" or item.get("alg") == "none":
        return False
    if item.get("kty") == "oct" or not PRIVATE_MEMBERS.isdisjoint(item):
        return False
    ops = item.get("key_ops")
    return ops is None or (isinstance(ops, list) and "verify" in ops)


def with_kid(keys: tuple[jwt.PyJWK, ...], kid: str | None) -> list[jwt.PyJWK]:
    """The keys a JWT with this ``kid`` may be signed with (all of them without one)."""
    if kid is None:
        return list(keys)
    return [k for k in keys if k.key_id == kid]


class KeySets:
    def __init__(
        self,
        fetcher: Fetcher,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        ttl_s: float = DEFAULT_TTL_S,
        min_refresh_s: float = DEFAULT_MIN_REFRESH_S,
        stale_s: float = DEFAULT_STALE_S,
    ) -> None:
        self.fetcher = fetcher
        self.monotonic = monotonic
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self.stale_s = stale_s
        self._inline: OrderedDict[str, tuple[jwt.PyJWK, ...]] = OrderedDict()
        self._fetched: OrderedDict[str, _Fetched] = OrderedDict()
        self.fetches = 0
        """Fetches started, for tests and metrics."""

    async def keys(self, source: KeySource, rules: HostRules, kid: str | None) -> list[jwt.PyJWK]:
        """The signature keys of ``source`` that carry ``kid`` (all when it is None).

        An empty list means the set has no such key even after a refresh.
        ``KeySetUnavailable`` when there is no set at all (refused host, fetch failed
        and nothing cached, no usable key).
        """
        if source.jwks is not None:
            return with_kid(self._parse_inline(source.jwks), kid)
        if source.jwks_uri is None:
            raise KeySetUnavailable("no jwks and no jwks_uri")
        return await self._from_uri(source.jwks_uri, rules, kid)

    def _parse_inline(self, jwks: Mapping[str, Any]) -> tuple[jwt.PyJWK, ...]:
        text = json.dumps(jwks, sort_keys=True, separators=(",", ":"))
        keys = self._inline.get(text)
        if keys is None:
            keys = parse(jwks)
            self._inline[text] = keys
            if len(self._inline) > MAX_ENTRIES:
                self._inline.popitem(last=False)
        else:
            self._inline.move_to_end(text)
        return keys

    async def _from_uri(self, uri: str, rules: HostRules, kid: str | None) -> list[jwt.PyJWK]:
        try:
            host = urlsplit(uri).hostname or ""
        except ValueError:
            raise KeySetUnavailable("jwks_uri is not a valid URL") from None
        if not rules.host_allowed(host):
            raise KeySetUnavailable(f"{host} is not in key_fetch.allowed_hosts")
        entry = self._fetched.get(uri)
        if entry is None:
            entry = _Fetched()
            self._fetched[uri] = entry
            if len(self._fetched) > MAX_ENTRIES:
                self._fetched.popitem(last=False)
        else:
            self._fetched.move_to_end(uri)
        now = self.monotonic()
        if entry.keys and now - entry.fetched_at < self.ttl_s:
            found = with_kid(entry.keys, kid)
            if found:
                return found
        if entry.lock.locked() or now - entry.tried_at >= self.min_refresh_s:
            # A fetch under way is joined: the generation changes when it ends.
            generation = entry.generation
            async with entry.lock:
                if entry.generation == generation:
                    await self._fetch(uri, rules, entry)
            now = self.monotonic()
        if not entry.keys or now - entry.fetched_at >= max(self.ttl_s, self.stale_s):
            raise KeySetUnavailable(entry.failure or f"no key set from {uri}")
        return with_kid(entry.keys, kid)

    async def _fetch(self, uri: str, rules: HostRules, entry: _Fetched) -> None:
        now = self.monotonic()
        entry.tried_at = now
        self.fetches += 1
        try:
            entry.keys = parse(await self.fetcher.get_json(uri, rules))
            entry.fetched_at = now
            entry.failure = None
        except (FetchRefused, KeySetUnavailable) as exc:
            entry.failure = str(exc)
        finally:
            entry.generation += 1
