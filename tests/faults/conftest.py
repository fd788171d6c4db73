"""Each fault test starts its own processes: the service, and for MongoDB a SecantusDB
server that the test may pause or kill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.deployment import Deployment
from tests.support.secantus import ServerProcess as MongoProcess

TRANSACTION_LIFETIME_S = 5.0
"""How long the server keeps a transaction that nobody uses (MongoDB's
``transactionLifetimeLimitSeconds``, 60 s by default). A killed service's open
transaction holds what it wrote (a tenant's event counter, a deletion's marker) until
then; below the service's 10 s of retrying write conflicts, the restarted service rides
that out instead of answering 503 (``docs/RELIABILITY.md``). Not much lower: SecantusDB
counts a slow statement's time as unused, and would abort a live bulk transaction."""


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoProcess]:
    """SecantusDB in a child process, fsyncing each commit (MongoDB's journaled
    majority commit), so that a test can SIGSTOP or SIGKILL it."""
    server = MongoProcess(
        tmp_path / "mongo", sync_on_commit=True, transaction_lifetime_s=TRANSACTION_LIFETIME_S
    )
    server.start()
    try:
        yield server
    finally:
        server.kill()  # its data is not needed after the test


@pytest.fixture(params=["sqlite", "mongodb"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    """The service's data on each store in turn."""
    if request.param == "sqlite":
        return Deployment(tmp_path)
    return Deployment(tmp_path, mongo=request.getfixturevalue("mongo"))
