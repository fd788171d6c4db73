"""Instructions per revocation, which do not drift with the machine as timings do.

Runs the service's ASGI app in-process on a fresh SQLite store (a tenant, a
``client_secret_basic`` client, 1,000 registered refresh tokens, 300 warm-up
revocations), then ``N`` timed revocations, each of its own token. Under valgrind's
callgrind the difference between a run with ``N`` and one with 0 is ``N`` revocations:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python scripts/count_instructions.py plain 300     # "Collected : …" on stderr
    python scripts/count_instructions.py --count plain 300  # both runs, the difference

``plain``: no plugin; ``inproc``: the three in-process plugins of ``bench.py
--plugins``; ``introspect``: introspections of live tokens instead of revocations.
``NO_METRICS=1`` and ``NO_LIMITS=1`` switch those off, to price them.
``PYTHONPATH=<another checkout>`` counts another version of the code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEY = "count-instructions-operator-key"
HOST = b"count.invalid"
PLUGINS_DIR = Path(__file__).resolve().parent.parent / "plugins"
PLUGINS = [
    {"name": "confidential_only", "config": {}},
    {"name": "revoke_veto", "config": {"clients": ["no-such-client"]}},
    {"name": "response_attributes", "config": {"attributes": {"revoked": True}}},
]
TOKENS = 1_000
WARMUP = 300


async def call(app: Any, method: str, path: str, body: bytes, headers: list[Any]) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", HOST), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return status[0]


def switch_off() -> None:
    if os.environ.get("NO_METRICS"):
        import app.metrics

        app.metrics.observe = lambda *args, **kwargs: None
    if os.environ.get("NO_LIMITS"):
        import app.oauth.abuse_limits as limits

        limits.limits = lambda tenant, config: limits.Limits(0, 0)


async def main(phase: str, n: int) -> None:
    from app.application import create_app
    from app.bootstrap import open_services
    from app.config import ServiceConfig
    from app.store.sqlite.store import SqliteStore

    switch_off()
    os.environ["REVOCATION_ADMIN_KEY"] = KEY
    tmp = Path(tempfile.mkdtemp(prefix="count-instructions-"))
    config = ServiceConfig(data_dir=tmp / "data", tenants_dir=None, plugins_dir=PLUGINS_DIR)
    store = SqliteStore(tmp / "store.sqlite3")
    await store.open()
    services = await open_services(config, store=store)
    app = create_app(services=services)
    admin = [(b"authorization", f"Bearer {KEY}".encode()), (b"content-type", b"application/json")]
    settings: dict[str, Any] = {"issuer": f"http://{HOST.decode()}/t/x"}
    if phase == "inproc":
        settings["plugins"] = {"enabled": PLUGINS}
    secret = "s" * 32
    client = {"type": "confidential", "client_secret": secret, "scope": "introspect"}
    now = int(time.time())
    credentials = [
        {"token": f"tok-{i:06d}", "type": "refresh_token", "client_id": "c",
         "exp": now + 86_400, "sub": f"u{i}", "grant_id": f"g{i}"}
        for i in range(TOKENS)
    ]  # fmt: skip
    tenant = json.dumps(settings).encode()
    assert await call(app, "PUT", "/admin/v1/tenants/x", tenant, admin) in (200, 201)
    client_body = json.dumps(client).encode()
    assert await call(app, "PUT", "/admin/v1/tenants/x/clients/c", client_body, admin) in (200, 201)
    batch = json.dumps(credentials).encode()
    assert await call(app, "POST", "/admin/v1/tenants/x/credentials", batch, admin) == 200
    basic = b"Basic " + base64.b64encode(f"c:{secret}".encode())
    head = [(b"authorization", basic), (b"content-type", b"application/x-www-form-urlencoded")]
    path = "/t/x/token/introspect" if phase == "introspect" else "/t/x/token/revoke"
    for i in range(WARMUP + n):
        form = f"token=tok-{i:06d}".encode()
        assert await call(app, "POST", path, form, head) == 200
    await services.close()
    await store.close()


def count(phase: str, n: int) -> int:
    """Instructions for ``n`` revocations: two runs under callgrind, subtracted."""

    def run(timed: int) -> int:
        valgrind = shutil.which("valgrind")
        assert valgrind, "valgrind is not installed"
        # A fixed hash seed: with a random one the count moves by about 100k instructions
        # per revocation from run to run (dict and set layouts); fixed, by under 1k.
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, phase, str(timed)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found, done.stderr[-2000:]
        return int(found.group(1))

    return run(n) - run(0)


if __name__ == "__main__":
    if sys.argv[1] == "--count":
        phase, n = sys.argv[2], int(sys.argv[3])
        print(f"{phase}: {count(phase, n) // n:,} instructions per revocation")
    else:
        from app.logging import configure_logging

        configure_logging(json=True, level="info", stream=open(os.devnull, "w"))  # noqa: SIM115
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
