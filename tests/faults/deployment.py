"""A service whose store outlives it: the SQLite file of a data directory, or a
SecantusDB process, with the service started, killed and started again on the same data
(same master key, same admin key), as an operator's supervisor would restart it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.secantus import ServerProcess as MongoProcess
from tests.support.server import ServerProcess, running_server

ADMIN_KEY = "test-operator-key-0123456789"
"""The key ``tests.support.world.OPERATOR`` presents."""


@dataclass
class Deployment:
    tmp: Path
    mongo: MongoProcess | None = None
    """None: the embedded store in ``tmp/data``."""
    database: str = field(default_factory=lambda: f"faults_{secrets.token_hex(4)}")
    master_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def store(self) -> str:
        return "sqlite" if self.mongo is None else "mongodb"

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def sqlite_file(self) -> Path:
        return self.data_dir / "revocation.sqlite3"

    def store_args(self) -> list[str]:
        """Where the data is, for ``serve`` and for the admin commands alike."""
        args = ["--data-dir", str(self.data_dir)]
        if self.mongo is not None:
            args += ["--mongodb-uri", self.mongo.uri.replace("/?", f"/{self.database}?")]
        return args

    def env(self) -> dict[str, str]:
        return {
            "REVOCATION_MASTER_KEY": self.master_key,
            "REVOCATION_ADMIN_KEY": ADMIN_KEY,
            "MONGODB_URI": "",  # never the caller's: only what store_args() names
        }

    @contextmanager
    def service(
        self, *, port: int | None = None, pipe_log: bool = False
    ) -> Iterator[ServerProcess]:
        """``serve`` on this deployment's data (on ``port``, or a free one); stopped (if
        still alive) on exit."""
        with running_server(
            ["--no-tenants", *self.store_args()],
            cwd=self.tmp,
            env=self.env(),
            port=port,
            pipe_log=pipe_log,
        ) as server:
            yield server
