"""Schemathesis against the OpenAPI document the service serves, through its ASGI app,
on every store.

Bounded for CI: ``MAX_EXAMPLES`` cases per operation and store, derandomized (the same
cases every run), no deadline, no example database. Each case is steered into the
seeded world (``steering.py``) and must pass schemathesis's checks: no 5xx, a documented
status code, content type and headers, a body that fits the documented schema, invalid
input refused, authentication not ignored. ``scripts/fuzz.py`` runs the same for longer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.python import asgi

from app.openapi.document import build
from app.routes import routes
from tests.fuzz.config import schemathesis_config
from tests.fuzz.service import CurrentService, ServiceOnStore
from tests.fuzz.steering import steer
from tests.fuzz.world import OPERATOR_KEY, World, seed
from tests.store.backends import BACKENDS
from tests.support.secantus import shared_server

MAX_EXAMPLES = 40
BASE_URL = "http://testserver"
SERVICE = CurrentService()
# The document of the application's routes, as /openapi.json serves it to the operator
# (tests/test_openapi.py holds the two equal).
schema = schemathesis.openapi.from_dict(build(routes()), config=schemathesis_config(OPERATOR_KEY))
schema.app = SERVICE


@pytest.fixture(scope="module", params=list(BACKENDS), ids=list(BACKENDS))
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The service on a fresh store of each backend, seeded once per module."""
    if request.param == "mongodb":
        # The session's SecantusDB, started here: started from schemathesis's event-loop
        # thread (by the first store that needs it), it is stopped twice at exit.
        shared_server()
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    service = ServiceOnStore(BACKENDS[request.param], tmp)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REVOCATION_ADMIN_KEY", OPERATOR_KEY)
        service.start()
    SERVICE.target = service
    try:
        with asgi.get_client(SERVICE) as client:
            yield seed(lambda method, path, **kw: client.request(method, path, **kw), BASE_URL)
    finally:
        SERVICE.target = None
        service.close()


# The service runs on schemathesis's event-loop thread: its background work (PyMongo's
# server selection, SecantusDB's threads) may draw from the global ``random`` while
# Hypothesis draws a case, which Hypothesis reports as a strategy using ``random``.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case, data: Any, world: World) -> None:
    case.call_and_validate(base_url=steer(case, data.draw, world))
