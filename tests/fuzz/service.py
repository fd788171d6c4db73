"""The service on one store backend, as ASGI apps that schemathesis can call in-process.

Schemathesis calls an ASGI app on an event loop of its own, in a thread of its own, and
a store belongs to the loop that opened it (SQLite's group-commit writer, PyMongo's
async client): so ``ServiceOnStore`` opens its store and services in its lifespan, on
that loop, through the same ``BACKENDS`` factories as the rest of the suite. Schemathesis
ends every lifespan after each test; the store stays open across them (the loop lives as
long as the process) until ``close()``, so one seeded store serves a module's tests.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from schemathesis.python import asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from app.application import create_app
from app.bootstrap import open_services
from app.config import ServiceConfig
from tests.store.backends import StoreFactory


class ServiceOnStore:
    """``create_app(services=…)`` on a store from ``factory`` (one of ``BACKENDS``),
    opened by the first lifespan (the operator's key is ``REVOCATION_ADMIN_KEY`` then)
    and closed by the lifespan that ``close()`` runs."""

    def __init__(self, factory: StoreFactory, tmp: Path) -> None:
        self.factory = factory
        self.tmp = tmp
        self.app: ASGIApp | None = None
        self._opened = contextlib.AsyncExitStack()
        self._closing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.app is not None, "the service has not started"
        await self.app(scope, receive, send)

    def start(self) -> None:
        asgi.get_client(self).__enter__()

    def close(self) -> None:
        """End the lifespan (starting one if schemathesis ended the last), closing the
        store with it."""
        self._closing = True
        asgi.get_client(self).__enter__()
        asgi.shutdown_lifespans()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        if self.app is None:
            store = await self._opened.enter_async_context(self.factory(self.tmp))
            config = ServiceConfig(data_dir=self.tmp / "data", tenants_dir=None)
            services = await open_services(config, store=store)
            self._opened.push_async_callback(services.close)
            self.app = create_app(services=services)
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        if self._closing:
            self.app = None
            await self._opened.aclose()
        await send({"type": "lifespan.shutdown.complete"})


class CurrentService:
    """An ASGI app that forwards each request to the service ``target`` names: what a
    module-level schema is bound to, while a fixture starts a service per store backend."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # The target's store lives in the target's own lifespan.
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.target is not None, "no service started"
        await self.target(scope, receive, send)
