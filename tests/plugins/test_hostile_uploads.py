"""Hostile tenant uploads through the HTTP interface: each is contained.

Every hostile behaviour runs once at import time and once inside ``pre_revoke``: the
offending tenant gets its failure mode's answer (``fail_closed``: 503 and nothing
revoked; ``fail_open``: the core revocation), a well-behaved tenant with a sandboxed
plugin of its own is answered normally at the same time, the service process goes on,
and the next call after a killed worker is served by a new one.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import httpx
import pytest

from app.services import Services
from tests.support.world import OPERATOR, World, make_world

GOOD = b"""
def pre_revoke(context, plan):
    return None
"""

# Each snippet either is stopped by the sandbox (an exception, a kill, a timeout) or, if it
# got through, returns a veto: then the revocation would not happen and the test fails.
HOSTILE = {
    "infinite_loop": "while True:\n    pass",
    "memory_bomb": "hoard = bytearray(1 << 34)\nLEAK = 'allocated 16 GiB'",
    "fork_bomb": "import os\nfor _ in range(64):\n    os.fork()\nLEAK = 'forked'",
    "read_passwd": "LEAK = open('/etc/passwd').read()[:20]",
    "read_data_dir": "import os\nLEAK = str(os.listdir(DATA_DIR))[:60]",
    "open_socket": (
        "import socket\n"
        "socket.create_connection(('127.0.0.1', 9), timeout=0.05)\n"
        "LEAK = 'connected'"
    ),
    "exit": "import os\nos._exit(3)",
    "huge_reply": "LEAK = 'x' * 10_000_000",
}
STDOUT_GARBAGE = "import os, sys\nprint('garbage ' * 5000)\nos.write(1, b'\\x00\\xff' * 5000)"


def hostile_source(kind: str, where: str, data_dir: Path) -> bytes:
    body = HOSTILE[kind].replace("DATA_DIR", repr(str(data_dir)))
    if where == "import":
        module = (
            f"LEAK = None\n{body}\n\ndef pre_revoke(context, plan):\n    return {{'veto': LEAK}}\n"
        )
    else:
        module = (
            "def pre_revoke(context, plan):\n"
            "    LEAK = None\n"
            f"{textwrap.indent(body, '    ')}\n"
            "    return {'veto': LEAK}\n"
        )
    return module.encode()


async def upload_and_enable(world: World, source: bytes, mode: str) -> None:
    tid = world.tenant.tenant_id
    r = await world.tenant.http.put(
        f"/admin/v1/tenants/{tid}/plugins/p",
        content=source,
        headers={**OPERATOR, "Content-Type": "text/x-python"},
    )
    assert r.status_code == 201, r.text
    await world.tenant.patch(
        {"plugins": {"enabled": [{"name": "p"}], "failure_mode": {"pre": mode}}}
    )


async def tokens(world: World, *names: str) -> None:
    await world.tenant.register(
        *({"token": n, "type": "access_token", "client_id": "app"} for n in names)
    )


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["import", "hook"])
@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_upload_is_contained(
    http: httpx.AsyncClient, services: Services, kind: str, where: str
) -> None:
    mode = "fail_closed" if where == "import" else "fail_open"
    evil = await make_world(http, "evil")
    good = await make_world(http, "good")
    await tokens(evil, "e-1", "e-2")
    await tokens(good, "g-1", "g-2")
    await upload_and_enable(good, GOOD, "fail_closed")
    await upload_and_enable(evil, hostile_source(kind, where, services.config.data_dir), mode)
    assert (await good.tenant.revoke("g-1", auth=good.app)).status_code == 200

    evil_answer, good_answer = await asyncio.gather(
        evil.tenant.revoke("e-1", auth=evil.app), good.tenant.revoke("g-2", auth=good.app)
    )

    assert good_answer.status_code == 200
    assert not await good.active("g-2")
    if mode == "fail_closed":
        assert evil_answer.status_code == 503
        assert evil_answer.json() == {"error": "temporarily_unavailable"}
        assert await evil.active("e-1")
    else:
        assert evil_answer.status_code == 200
        assert not await evil.active("e-1")
    events = await evil.tenant.events()
    assert events[0]["type"] == "plugin_failed"
    assert events[0]["cause"] == "p@1"
    assert services.plugins.failures[("evil", "p")] >= 1

    # The tenant replaces its plugin: a new worker serves it.
    await upload_and_enable(evil, GOOD, mode)
    assert (await evil.tenant.revoke("e-2", auth=evil.app)).status_code == 200
    assert not await evil.active("e-2")


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["import", "hook"])
async def test_garbage_on_stdout_changes_nothing(http: httpx.AsyncClient, where: str) -> None:
    world = await make_world(http, "noisy")
    await tokens(world, "n-1")
    if where == "import":
        source = f"{STDOUT_GARBAGE}\n\ndef pre_revoke(context, plan):\n    return None\n"
    else:
        indented = textwrap.indent(STDOUT_GARBAGE, "    ")
        source = f"def pre_revoke(context, plan):\n{indented}\n    return None\n"
    await upload_and_enable(world, source.encode(), "fail_closed")
    assert (await world.tenant.revoke("n-1", auth=world.app)).status_code == 200
    assert not await world.active("n-1")
    assert [e["type"] for e in await world.tenant.events()] == ["revoked"]
