"""The sandbox that runs tenants' uploaded plugin code outside the service process.

Every hostile behaviour is tried at import time and inside a hook; each time the call
fails as it should, another tenant's worker answers right after, untouched, and the
offending tenant's next call with good code works (in a fresh worker when the bad one
was killed).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from app.plugins.sandbox import PluginFailure, Sandbox, SandboxLimits
from app.plugins.sandbox import launch as launching

ARGS: dict[str, Any] = {"context": {"tenant_id": "acme"}, "plan": {"cause": "token"}}
GOOD = """
import os

def pre_revoke(context, plan):
    return {"tenant": context["tenant_id"], "cause": plan["cause"], "pid": os.getpid()}
"""
KILLING = {"timeout", "crashed", "malformed_reply", "oversized_reply"}


@dataclass(frozen=True)
class Code:
    name: str
    version: int
    source: str
    sha256: str


def plugin(source: str, name: str = "p", version: int = 1) -> Code:
    source = textwrap.dedent(source)
    return Code(name, version, source, hashlib.sha256(source.encode()).hexdigest())


class CountingCode:
    """A plugin version that counts how often its source is read."""

    def __init__(self, source: str) -> None:
        self.name, self.version = "counted", 1
        self._source = textwrap.dedent(source)
        self.sha256 = hashlib.sha256(self._source.encode()).hexdigest()
        self.reads = 0

    @property
    def source(self) -> str:
        self.reads += 1
        return self._source


def our_child(pid: int) -> bool:
    """Whether ``pid`` is a child of this process, alive or not yet reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rpartition(")")[2].split()[1]) == os.getpid()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(SandboxLimits(call_timeout_s=5.0))
    try:
        yield box
    finally:
        await box.close()


async def good_call(box: Sandbox, tenant_id: str, name: str = "good") -> dict[str, Any]:
    done = await box.call(tenant_id, plugin(GOOD, name), "pre_revoke", ARGS)
    assert done.value["tenant"] == "acme" and done.value["cause"] == "token"
    assert done.value["pid"] in box.worker_pids(tenant_id)
    value: dict[str, Any] = done.value
    return value


# --- hostile code ---------------------------------------------------------------------

DATA_SECRET = "master-key-material-0123456789"
# A well-formed reply (size, id, kind ok, flags cached, no output, value null) to a request
# that was never sent.
FORGED_REPLY = struct.pack(">IIBBI", 14, 999_999, 0, 2, 0) + b"null"

HOSTILE: dict[str, tuple[str, set[str] | None]] = {
    "infinite_loop": ("while True:\n    pass\n", {"timeout"}),
    "memory_bomb": (
        "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 2**20))\n",
        {"exception", "crashed"},
    ),
    "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", {"exception"}),
    "read_etc_passwd": ("open('/etc/passwd').read()\n", {"exception"}),
    "read_data_dir": ("open(DATA_FILE).read()\n", {"exception"}),
    "open_socket": (
        """\
        try:
            import socket
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("127.0.0.1", 9))
        except ImportError:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.socket(2, 1, 0) < 0:
                raise OSError(ctypes.get_errno(), "socket() refused")
        raise AssertionError("a socket was opened")
        """,
        {"exception"},
    ),
    "exit": ("import os\nos._exit(3)\n", {"crashed"}),
    "garbage_on_stdout": (
        """\
        import os, sys
        os.write(1, b"\\x00\\x00\\x00\\x05garbage on fd 1")
        os.write(2, b"\\xff\\xfe garbage on fd 2")
        sys.__stdout__.write("more garbage")
        print("printed")
        """,
        None,
    ),
    "ten_megabyte_frame": (
        """\
        import os, struct
        for fd in range(3, 4096):
            try:
                os.write(fd, struct.pack(">I", 10 * 2**20) + b"x" * 1024)
            except OSError:
                pass
        """,
        {"oversized_reply"},
    ),
    "garbage_frames": (
        """\
        import os
        for fd in range(3, 4096):
            try:
                os.write(fd, b"\\x00\\x00\\x00\\x07garbage" * 3)
            except OSError:
                pass
        """,
        {"malformed_reply"},
    ),
    "reply_to_another_request": (
        f"""\
        import os
        for fd in range(3, 4096):
            try:
                os.write(fd, {FORGED_REPLY!r})
            except OSError:
                pass
        """,
        {"malformed_reply"},
    ),
}
TRAILER = "\ndef pre_revoke(context, plan):\n    return {'survived': True}\n"


def hostile_source(body: str, where: str, data_file: Path) -> str:
    body = textwrap.dedent(body).replace("DATA_FILE", repr(str(data_file)))
    if where == "import":
        return body + TRAILER
    return (
        "def pre_revoke(context, plan):\n"
        + textwrap.indent(body, "    ")
        + "    return {'survived': True}\n"
    )


async def assert_contained(
    box: Sandbox, source: str, expected: set[str] | None, **call: Any
) -> PluginFailure | None:
    """Runs ``source`` for tenant ``bad`` with a bystander tenant around; the failure."""
    bystander = await good_call(box, "bystander")
    await good_call(box, "bad", "before")
    bad_pids = box.worker_pids("bad")
    failure: PluginFailure | None = None
    try:
        done = await box.call("bad", plugin(source, "hostile"), "pre_revoke", ARGS, **call)
    except PluginFailure as exc:
        failure = exc
        assert expected is not None, f"unexpected failure {exc}"
        assert exc.kind in expected, exc
    else:
        assert expected is None, f"expected {expected}, got {done}"
        assert done.value == {"survived": True}
    again = await good_call(box, "bystander")
    assert again["pid"] == bystander["pid"], "the other tenant's worker was touched"
    after = await good_call(box, "bad", "after")
    if failure is not None and failure.kind in KILLING:
        assert after["pid"] not in bad_pids
    return failure


@pytest.mark.parametrize("where", ["import", "hook"])
@pytest.mark.parametrize("behaviour", list(HOSTILE))
async def test_hostile_code_is_contained(
    sandbox: Sandbox, tmp_path: Path, behaviour: str, where: str
) -> None:
    data_file = tmp_path / "data" / "master-key"
    data_file.parent.mkdir()
    data_file.write_text(DATA_SECRET)
    body, expected = HOSTILE[behaviour]
    source = hostile_source(body, where, data_file)
    timeout = {"timeout_s": 0.5} if expected == {"timeout"} else {}
    failure = await assert_contained(sandbox, source, expected, **timeout)
    if failure is not None:
        assert DATA_SECRET not in failure.detail
        assert "a socket was opened" not in failure.detail
        assert "Traceback" not in failure.detail
    if behaviour.startswith("read_"):
        assert failure is not None and "FileNotFoundError" in failure.detail
    if behaviour == "exit":
        assert failure is not None and "status 3" in failure.detail


@pytest.mark.parametrize("returned", ["{1, 2}", "float('nan')", "object()", "'\\ud800'"], ids=str)
async def test_a_non_json_value_is_refused(sandbox: Sandbox, returned: str) -> None:
    source = f"def pre_revoke(context, plan):\n    return {{'value': {returned}}}\n"
    failure = await assert_contained(sandbox, source, {"not_json"})
    assert failure is not None


async def test_a_ten_megabyte_return_value_is_refused(sandbox: Sandbox) -> None:
    source = "def pre_revoke(context, plan):\n    return 'x' * (10 * 2**20)\n"
    await assert_contained(sandbox, source, {"oversized_reply"})


@pytest.mark.parametrize(
    "source",
    [
        "def post_revoke(context, outcome):\n    return None\n",
        "pre_revoke = 42\n",
    ],
    ids=["not_defined", "not_a_function"],
)
async def test_a_missing_hook_keeps_the_worker(sandbox: Sandbox, source: str) -> None:
    await good_call(sandbox, "bad")
    pids = sandbox.worker_pids("bad")
    failure = await assert_contained(sandbox, source, {"missing_hook"})
    assert failure is not None
    assert sandbox.worker_pids("bad") == pids


async def test_exceptions_are_reported_without_a_traceback(sandbox: Sandbox) -> None:
    source = """
    def pre_revoke(context, plan):
        secret = "local-value"
        raise ValueError("no " + plan["cause"])
    """
    with pytest.raises(PluginFailure) as caught:
        await sandbox.call("acme", plugin(source), "pre_revoke", ARGS)
    assert caught.value.kind == "exception"
    assert caught.value.detail == "ValueError: no token (line 4)"


async def test_cancelling_a_call_kills_its_worker(sandbox: Sandbox) -> None:
    source = "import time\ndef pre_revoke(context, plan):\n    time.sleep(60)\n"
    await good_call(sandbox, "acme")
    [pid] = sandbox.worker_pids("acme")
    call = asyncio.create_task(sandbox.call("acme", plugin(source, "slow"), "pre_revoke", ARGS))
    await asyncio.sleep(0)  # the call takes the idle worker and sends its request
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await good_call(sandbox, "acme"))["pid"] != pid


# --- concurrent calls -------------------------------------------------------------------

ECHO = """
import os

def pre_auth(context):
    return {"n": context["n"], "pid": os.getpid()}
"""


async def echo(box: Sandbox, tenant_id: str, n: int, **call: Any) -> dict[str, Any]:
    done = await box.call(
        tenant_id, plugin(ECHO, "echo"), "pre_auth", {"context": {"n": n}}, **call
    )
    value: dict[str, Any] = done.value
    assert value["n"] == n, "another call's answer"
    return value


@pytest.mark.parametrize("max_in_flight", [1, 4, 32])
async def test_concurrent_calls_of_a_tenant_share_its_workers(max_in_flight: int) -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, max_in_flight=max_in_flight))
    try:
        values = await asyncio.gather(*(echo(box, "acme", n) for n in range(200)))
        assert [v["n"] for v in values] == list(range(200))
        assert len({v["pid"] for v in values}) <= 2
        assert len(box.worker_pids("acme")) <= 2
    finally:
        await box.close()


async def test_concurrent_first_calls_send_the_source_once() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=1))
    code = CountingCode(
        """
        calls = 0
        def pre_auth(context):
            global calls
            calls += 1
            return calls
        """
    )
    try:
        done = await asyncio.gather(
            *(box.call("acme", code, "pre_auth", {"context": {}}) for _ in range(20))
        )
    finally:
        await box.close()
    assert sorted(d.value for d in done) == list(range(1, 21)), "one module, loaded once"
    assert code.reads == 1


async def test_a_failing_import_fails_each_concurrent_first_call() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=1))
    code = CountingCode("raise ValueError('broken')\ndef pre_auth(context):\n    pass\n")
    try:
        [pid] = [(await echo(box, "acme", 0))["pid"]]
        calls = [box.call("acme", code, "pre_auth", {"context": {}}) for _ in range(5)]
        failures = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(f, PluginFailure) for f in failures), failures
        assert {(f.kind, f.detail) for f in failures if isinstance(f, PluginFailure)} == {
            ("exception", "ValueError: broken (line 1)")
        }
        assert (await echo(box, "acme", 1))["pid"] == pid, "the worker is kept"
    finally:
        await box.close()


async def test_the_process_cap_lets_each_tenant_in_turn() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, max_workers=1))
    try:
        calls = [echo(box, f"tenant-{t}", n) for n in range(4) for t in range(5)]
        values = await asyncio.gather(*calls)
        assert len({v["pid"] for v in values}) >= 5, "a worker per tenant, in turn"
    finally:
        await box.close()


async def keep_calling(box: Sandbox, tenant_id: str, until: asyncio.Task[Any]) -> list[int]:
    pids: list[int] = []
    n = 0
    while not until.done():
        pids.append((await echo(box, tenant_id, n))["pid"])
        n += 1
    return pids


async def test_a_timeout_fails_the_calls_queued_behind_it_only() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=1))
    hang = plugin("def pre_auth(context):\n    while True:\n        pass\n", "hang")
    try:
        [pid] = [(await echo(box, "acme", 0))["pid"]]
        [other] = [(await echo(box, "other", 0))["pid"]]
        hanging = asyncio.create_task(
            box.call("acme", hang, "pre_auth", {"context": {}}, timeout_s=0.5)
        )
        await asyncio.sleep(0)  # its request is sent first
        queued = [asyncio.create_task(echo(box, "acme", n, timeout_s=5.0)) for n in range(5)]
        bystanders = [keep_calling(box, "other", hanging) for _ in range(4)]
        others = await asyncio.gather(*bystanders)
        failures = await asyncio.gather(hanging, *queued, return_exceptions=True)
        assert all(isinstance(f, PluginFailure) for f in failures), failures
        timeout, *behind = [f for f in failures if isinstance(f, PluginFailure)]
        assert timeout.kind == "timeout"
        for failure in behind:
            assert failure.kind == "crashed"
            assert "another call of this tenant timed out" in failure.detail
        assert {p for pids in others for p in pids} == {other}, "the other tenant's worker"
        assert box.worker_pids("other") == [other]
        assert (await echo(box, "acme", 1))["pid"] != pid, "a new worker"
    finally:
        await box.close()


async def test_cancelling_a_call_fails_the_calls_queued_behind_it() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=1))
    slow = plugin("import time\ndef pre_auth(context):\n    time.sleep(60)\n", "slow")
    try:
        [pid] = [(await echo(box, "acme", 0))["pid"]]
        call = asyncio.create_task(box.call("acme", slow, "pre_auth", {"context": {}}))
        await asyncio.sleep(0)
        queued = [asyncio.create_task(echo(box, "acme", n)) for n in range(3)]
        await asyncio.sleep(0)
        call.cancel()
        failures = await asyncio.gather(*queued, return_exceptions=True)
        assert all(isinstance(f, PluginFailure) and f.kind == "crashed" for f in failures)
        assert all("cancelled" in str(f) for f in failures)
        with pytest.raises(asyncio.CancelledError):
            await call
        assert (await echo(box, "acme", 1))["pid"] != pid
    finally:
        await box.close()


# --- normal operation -----------------------------------------------------------------


async def test_values_and_output_come_back(sandbox: Sandbox) -> None:
    source = """
    import sys
    def response_mapping(context, response):
        print("status", response["status"])
        print("to stderr", file=sys.stderr)
        return {"attributes": {"tenant": context["tenant_id"]}, "headers": {}}
    """
    done = await sandbox.call(
        "acme",
        plugin(source),
        "response_mapping",
        {"context": {"tenant_id": "acme"}, "response": {"status": 200, "body": None}},
    )
    assert done.value == {"attributes": {"tenant": "acme"}, "headers": {}}
    assert done.output == "status 200\nto stderr\n"
    assert done.duration_s >= 0
    none = await sandbox.call(
        "acme", plugin("def pre_auth(context):\n    pass\n", "n"), "pre_auth", {"context": {}}
    )
    assert none.value is None and none.output == ""


async def test_code_runs_in_another_process(sandbox: Sandbox) -> None:
    value = await good_call(sandbox, "acme")
    assert value["pid"] != os.getpid()
    assert our_child(value["pid"])


async def test_output_is_bounded() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=5.0, max_output_bytes=100))
    try:
        source = "def pre_auth(context):\n    print('é' * 10_000)\n"
        done = await box.call("acme", plugin(source), "pre_auth", {"context": {}})
    finally:
        await box.close()
    assert done.output.startswith("éé")
    assert done.output.endswith("[output truncated]")
    kept = done.output.removesuffix("\n[output truncated]")
    assert len(kept.encode()) <= 100


async def test_a_module_is_loaded_once_per_worker() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=5.0, workers_per_tenant=1))
    code = CountingCode(
        """
        IMPORTS = [1]
        calls = 0
        def pre_auth(context):
            global calls
            calls += 1
            return {"imports": len(IMPORTS), "calls": calls}
        """
    )
    try:
        values = [(await box.call("acme", code, "pre_auth", {"context": {}})).value]
        values += [(await box.call("acme", code, "pre_auth", {"context": {}})).value]
        values += [(await box.call("acme", code, "pre_auth", {"context": {}})).value]
    finally:
        await box.close()
    assert values == [{"imports": 1, "calls": n} for n in (1, 2, 3)]
    assert code.reads == 1, "the source is sent with the first call only"


async def test_a_new_version_replaces_the_old() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=5.0, workers_per_tenant=1))
    source = "import os\ndef pre_auth(context):\n    return [{}, os.getpid()]\n"
    one, two = plugin(source.format(1), "p", 1), plugin(source.format(2), "p", 2)
    try:
        values = []
        for code in (one, two, one):
            values.append((await box.call("acme", code, "pre_auth", {"context": {}})).value)
    finally:
        await box.close()
    assert [v[0] for v in values] == [1, 2, 1], "and back on a rollback"
    assert len({v[1] for v in values}) == 1, "one worker, all versions"


async def test_a_worker_that_cannot_start_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launching, "WORKER_SCRIPT", "/nonexistent/worker.py")
    box = Sandbox(SandboxLimits(call_timeout_s=5.0))
    try:
        with pytest.raises(PluginFailure) as caught:
            await box.call("acme", plugin(GOOD), "pre_revoke", ARGS)
    finally:
        await box.close()
    assert caught.value.kind == "crashed"
    assert box.worker_pids("acme") == []


async def test_tenants_never_share_a_worker(sandbox: Sandbox) -> None:
    a = await good_call(sandbox, "tenant-a")
    b = await good_call(sandbox, "tenant-b")
    assert a["pid"] != b["pid"]
    assert set(sandbox.worker_pids("tenant-a")).isdisjoint(sandbox.worker_pids("tenant-b"))


async def test_the_per_tenant_cap_holds_under_concurrent_calls() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=2))
    source = (
        "import os, time\ndef pre_auth(context):\n    time.sleep(0.02)\n    return os.getpid()\n"
    )
    code = plugin(source)
    try:
        calls = [box.call("acme", code, "pre_auth", {"context": {}}) for _ in range(10)]
        done = await asyncio.gather(*calls)
        assert len({d.value for d in done}) <= 2
        assert len(box.worker_pids("acme")) <= 2
    finally:
        await box.close()


async def test_a_call_waits_for_a_busy_tenant_at_most_its_timeout() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, workers_per_tenant=1))
    slow = plugin("import time\ndef pre_auth(context):\n    time.sleep(60)\n", "slow")
    try:
        await good_call(box, "acme")
        hanging = asyncio.create_task(box.call("acme", slow, "pre_auth", {"context": {}}))
        await asyncio.sleep(0)
        with pytest.raises(PluginFailure) as caught:
            await box.call("acme", plugin(GOOD), "pre_revoke", ARGS, timeout_s=0.1)
        assert caught.value.kind == "timeout"
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        await good_call(box, "acme")
    finally:
        await box.close()


async def test_the_process_cap_stops_another_tenants_idle_worker_or_waits() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0, max_workers=1))
    slow = plugin("import time\ndef pre_auth(context):\n    time.sleep(60)\n", "slow")
    try:
        [a] = [(await good_call(box, "tenant-a"))["pid"]]
        await good_call(box, "tenant-b")
        assert box.worker_pids("tenant-a") == [] and not our_child(a)
        hanging = asyncio.create_task(box.call("tenant-b", slow, "pre_auth", {"context": {}}))
        await asyncio.sleep(0)
        with pytest.raises(PluginFailure) as caught:
            await box.call("tenant-a", plugin(GOOD), "pre_revoke", ARGS, timeout_s=0.1)
        assert caught.value.kind == "timeout"
        waiting = asyncio.create_task(good_call(box, "tenant-a"))
        await asyncio.sleep(0)
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        await waiting
    finally:
        await box.close()


async def test_idle_workers_are_stopped() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=5.0, idle_s=60.0))
    try:
        await good_call(box, "acme")
        [pid] = box.worker_pids("acme")
        assert await box.reap_idle() == 0
        assert box.worker_pids("acme") == [pid]
    finally:
        await box.close()
    box = Sandbox(SandboxLimits(call_timeout_s=5.0, idle_s=0.0))
    try:
        await good_call(box, "acme")
        [pid] = box.worker_pids("acme")
        await box.reap_idle()
        assert box.worker_pids("acme") == [] and not our_child(pid)
        await good_call(box, "acme")
    finally:
        await box.close()


async def test_close_leaves_no_child_process() -> None:
    box = Sandbox(SandboxLimits(call_timeout_s=10.0))
    slow = plugin("import time\ndef pre_auth(context):\n    time.sleep(60)\n", "slow")
    await good_call(box, "tenant-a")
    await good_call(box, "tenant-b")
    await good_call(box, "tenant-c")
    busy = asyncio.create_task(box.call("tenant-c", slow, "pre_auth", {"context": {}}))
    await asyncio.sleep(0)  # the call takes tenant-c's idle worker
    pids = box.worker_pids("tenant-a") + box.worker_pids("tenant-b") + box.worker_pids("tenant-c")
    await box.close()
    await box.close()
    with pytest.raises(PluginFailure) as caught:
        await busy
    assert caught.value.kind == "crashed"
    assert not any(our_child(pid) for pid in pids)
    with pytest.raises(RuntimeError):
        await box.call("tenant-a", plugin(GOOD), "pre_revoke", ARGS)


async def test_layers_are_reported(sandbox: Sandbox) -> None:
    layers = await sandbox.layers()
    assert set(layers) >= {
        "unshare",
        "user_namespace",
        "network_namespace",
        "mount_namespace",
        "chroot",
        "readonly_root",
        "rlimits",
        "seccomp",
        "no_new_privs",
        "landlock",
    }
    assert all(isinstance(on, bool) for on in layers.values())
    assert layers["rlimits"]


async def test_a_worker_runs_with_the_layers_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``unshare`` (a container's seccomp profile refuses user namespaces)."""
    probed = await launching.launch()
    monkeypatch.setattr(launching, "_cached", replace(probed, prefix=()))
    box = Sandbox(SandboxLimits(call_timeout_s=5.0))
    try:
        layers = await box.layers()
        assert not layers["unshare"] and not layers["user_namespace"]
        await good_call(box, "acme")
        if layers["chroot"] or layers["landlock"]:
            reader = plugin("def pre_auth(context):\n    open('/etc/passwd').read()\n")
            with pytest.raises(PluginFailure) as caught:
                await box.call("acme", reader, "pre_auth", {"context": {}})
            assert caught.value.kind == "exception"
    finally:
        await box.close()


def test_it_runs_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        box = Sandbox(SandboxLimits(call_timeout_s=5.0))
        try:
            await good_call(box, "acme")
            with pytest.raises(PluginFailure) as caught:
                source = "def pre_auth(context):\n    while True:\n        pass\n"
                await box.call("acme", plugin(source), "pre_auth", {"context": {}}, timeout_s=0.3)
            assert caught.value.kind == "timeout"
            await good_call(box, "acme")
        finally:
            await box.close()

    uvloop.run(scenario())
