"""A resource server that refuses a revoked token within a second, though it caches.

It validates bearer tokens by introspection (RFC 7662) and caches each answer for
``CACHE_S`` seconds, as resource servers do to spare the authorization server. A cache
alone would keep accepting a revoked token until its entry expires; this one drops
entries as revocations arrive, by either or both of:

- **the feed** (``FEED=1``): a task long-polls ``GET {issuer}/revocation/events`` with
  the resource server's client credentials (scope ``revocation_events``) and resumes
  from its cursor after a restart of either side;
- **push** (a receiver registered by the tenant's admin, pointing at
  ``POST /security-events``): Security Event Tokens (RFC 8417, RFC 8935), each verified
  with the tenant's keys from ``{issuer}/jwks`` before it is believed.

An event names what it took down by ``client_id``, ``sub``, ``grant_id`` and ``jti``,
never by the token. A cached answer is dropped when it could be among them: the same
client and subject (or the same ``jti``). That drops a little more than needed (a
dropped answer is introspected again on its next use), never less.

Run it beside ``revocation-service serve`` (see ``examples/README.md``)::

    ISSUER=http://127.0.0.1:8000/t/demo CLIENT_ID=api CLIENT_SECRET=… \\
        python examples/resource_server.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CACHE_S = 300.0
WAIT_S = 25
"""How long one long-poll of the feed may be held open by the service."""
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str
    follow_feed: bool = True
    audience: str | None = None
    """The ``aud`` pushed SETs must carry (the receiver's URL or configured audience)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            issuer=env["ISSUER"].rstrip("/"),
            client_id=env["CLIENT_ID"],
            client_secret=env["CLIENT_SECRET"],
            follow_feed=env.get("FEED", "1") == "1",
            audience=env.get("SET_AUDIENCE") or None,
        )


@dataclass(slots=True)
class Cached:
    answer: dict[str, Any]
    until: float


class TokenCache:
    """Introspection answers by token, dropped on expiry or on a matching revocation."""

    def __init__(self) -> None:
        self._entries: dict[str, Cached] = {}
        self.dropped = 0

    def get(self, token: str) -> dict[str, Any] | None:
        entry = self._entries.get(token)
        if entry is None or entry.until < time.monotonic():
            self._entries.pop(token, None)
            return None
        return entry.answer

    def put(self, token: str, answer: dict[str, Any]) -> None:
        self._entries[token] = Cached(answer, time.monotonic() + CACHE_S)

    def drop_matching(self, event: Mapping[str, Any]) -> None:
        """Drop every answer the event may have taken down."""
        if event.get("type") not in ("revoked", "session_ended"):
            return
        for token, entry in list(self._entries.items()):
            if _covers(event, entry.answer):
                del self._entries[token]
                self.dropped += 1


def _covers(event: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
    if event.get("jti") and event["jti"] == answer.get("jti"):
        return True
    named = [key for key in ("client_id", "sub") if event.get(key)]
    if not named:
        return True  # nothing to go by: assume the worst
    return all(event[key] == answer.get(key) for key in named)


class ResourceServer:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.cache = TokenCache()
        self.cursor = "0"
        self.auth = httpx.BasicAuth(settings.client_id, settings.client_secret)
        self._jwks: jwt.PyJWKSet | None = None

    # --- validating a bearer token -----------------------------------------------------

    async def active(self, token: str) -> dict[str, Any] | None:
        answer = self.cache.get(token)
        if answer is None:
            response = await self.http.post(
                f"{self.settings.issuer}/token/introspect", data={"token": token}, auth=self.auth
            )
            response.raise_for_status()
            answer = response.json()
            self.cache.put(token, answer)
        return answer if answer.get("active") else None

    # --- the feed ----------------------------------------------------------------------

    async def start_cursor(self) -> None:
        """Start from the latest event: answers cached from now on are what matters."""
        page = await self._events(after="0", wait=0, limit=1000)
        while page["events"]:
            self.cursor = page["next"]
            page = await self._events(after=self.cursor, wait=0, limit=1000)

    async def follow_feed(self) -> None:
        while True:
            try:
                page = await self._events(after=self.cursor, wait=WAIT_S, limit=100)
            except (httpx.HTTPError, ValueError):
                await asyncio.sleep(RETRY_S)
                continue
            for event in page["events"]:
                self.cache.drop_matching(event)
            self.cursor = page["next"]

    async def _events(self, *, after: str, wait: int, limit: int) -> dict[str, Any]:
        response = await self.http.get(
            f"{self.settings.issuer}/revocation/events",
            params={"after": after, "wait": wait, "limit": limit},
            auth=self.auth,
            timeout=wait + 10,
        )
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page

    # --- pushed Security Event Tokens --------------------------------------------------

    async def receive_set(self, body: bytes) -> bool:
        """Verify and apply one SET; False when it is not one of the issuer's."""
        try:
            header = jwt.get_unverified_header(body)
            key = await self._key(str(header.get("kid")))
            claims = jwt.decode(
                body,
                key,
                algorithms=["ES256", "RS256", "PS256", "EdDSA"],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                options={"verify_aud": self.settings.audience is not None, "require": ["iat"]},
            )
        except (jwt.PyJWTError, httpx.HTTPError, KeyError):
            return False
        for payload in claims.get("events", {}).values():
            subject = claims.get("sub_id", {})
            event = {"type": "revoked", **payload}
            if subject.get("format") == "iss_sub":
                event.setdefault("sub", subject.get("sub"))
            self.cache.drop_matching(event)
        return True

    async def _key(self, kid: str) -> Any:
        for refresh in (False, True):
            if self._jwks is None or refresh:
                response = await self.http.get(f"{self.settings.issuer}/jwks")
                response.raise_for_status()
                self._jwks = jwt.PyJWKSet.from_dict(response.json())
            for key in self._jwks.keys:
                if key.key_id == kid:
                    return key.key
        raise KeyError(kid)


def create_app(
    settings: Settings | None = None, http: httpx.AsyncClient | None = None
) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = http or httpx.AsyncClient(timeout=10)
        server = ResourceServer(settings, client)
        app.state.server = server
        follower = None
        if settings.follow_feed:
            await server.start_cursor()
            follower = asyncio.create_task(server.follow_feed())
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            if http is None:
                await client.aclose()

    async def resource(request: Request) -> Response:
        server: ResourceServer = request.app.state.server
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        answer = await server.active(token) if scheme.lower() == "bearer" and token else None
        if answer is None:
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return JSONResponse({"hello": answer.get("sub"), "client_id": answer.get("client_id")})

    async def security_events(request: Request) -> Response:
        server: ResourceServer = request.app.state.server
        if await server.receive_set(await request.body()):
            return Response(status_code=202)
        return JSONResponse(
            {"err": "invalid_key", "description": "not a SET of this issuer"}, status_code=400
        )

    return Starlette(
        routes=[
            Route("/resource", resource, methods=["GET"]),
            Route("/security-events", security_events, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "9000")))
