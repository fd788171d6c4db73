"""The calls in flight on one worker: requests written without waiting for earlier replies,
replies read as they arrive (an ``asyncio.Protocol`` on the worker's pipe) and matched
to the calls in order.

A worker answers strictly in order, so the oldest call in flight is the one it runs (or
has just answered). Whatever leaves its state unknown, a call past its deadline, a
cancelled call, a reply that is too large or not the protocol, kills it, and every call
still in flight on it fails: they are all the same tenant's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from app.plugins.sandbox import protocol
from app.plugins.sandbox.limits import SandboxLimits
from app.plugins.sandbox.model import PluginCode, PluginFailure

MAX_LOADED = 16
"""Mirrors the worker's module cache; the worker asks again for a source it evicted."""


class Pending:
    __slots__ = ("args", "call_id", "deadline", "future", "hook", "key", "plugin", "with_source")

    def __init__(
        self,
        future: asyncio.Future[tuple[Any, str]],
        plugin: PluginCode,
        hook: str,
        args: dict[str, Any],
        deadline: float,
    ) -> None:
        self.future = future
        self.plugin = plugin
        self.hook = hook
        self.args = args
        self.deadline = deadline
        self.key = f"{plugin.name}:{plugin.version}:{plugin.sha256}"
        self.call_id = 0
        self.with_source = False


def crashed(why: str) -> PluginFailure:
    return PluginFailure("crashed", f"worker killed after {why}")


class Calls(asyncio.Protocol):
    def __init__(self, pid: int, limits: SandboxLimits) -> None:
        self.pid = pid
        self.accepting = True
        """False once it must not take another call (killed, closed, asked to retire)."""
        self.latest_deadline = float("-inf")
        self.loaded: OrderedDict[str, None] = OrderedDict()
        """The modules the worker holds, or will once it reads the requests sent."""
        self.on_lost: Callable[[], None] = lambda: None
        """Called when the worker closes its pipe (it died, most likely)."""
        self.writer: asyncio.WriteTransport | None = None
        self._loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[bytes] = self._loop.create_future()
        self._reader: asyncio.BaseTransport | None = None
        self._replies = protocol.ReplyReader(limits.max_output_bytes, limits.max_reply_bytes)
        self._pending: deque[Pending] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._next_id = 0
        self._closed = False

    @property
    def usable(self) -> bool:
        # The write side may see the worker gone (its end of the pipe closed) a callback
        # before the read side does: no request is written to it meanwhile.
        return self.accepting and self.writer is not None and not self.writer.is_closing()

    # --- calls -------------------------------------------------------------------------

    def submit(
        self, plugin: PluginCode, hook: str, args: dict[str, Any], deadline: float
    ) -> Pending:
        """Sends the request; ``TypeError``/``ValueError`` (nothing sent) if ``args`` is
        not JSON."""
        if not self.usable:
            raise PluginFailure("crashed", "the worker is gone")
        pending = Pending(self._loop.create_future(), plugin, hook, args, deadline)
        self._send(pending, pending.key not in self.loaded)
        self.latest_deadline = max(self.latest_deadline, deadline)
        if deadline < self._timer_at:
            self._arm(deadline)
        return pending

    def cancelled(self, pending: Pending) -> None:
        """Its caller gave up: the worker may be running it still."""
        if pending in self._pending:
            self.kill(None, pending, crashed("another call of this tenant was cancelled"))

    def _send(self, pending: Pending, with_source: bool) -> None:
        plugin, key = pending.plugin, pending.key
        module = {"key": key, "name": plugin.name}
        if with_source:
            module["source"] = plugin.source
        self._next_id = self._next_id % 0xFFFF_FFFF + 1
        frame = protocol.encode_request(self._next_id, pending.hook, module, pending.args)
        pending.call_id, pending.with_source = self._next_id, with_source
        if with_source:
            # The worker keeps one version of a plugin: loading one drops the others.
            for other in [k for k in self.loaded if k.startswith(f"{plugin.name}:")]:
                del self.loaded[other]
            self.loaded[key] = None
            while len(self.loaded) > MAX_LOADED:
                self.loaded.popitem(last=False)
        else:
            self.loaded.move_to_end(key)
        self._pending.append(pending)
        assert self.writer is not None
        # At once, even behind other calls: a write deferred to the next loop iteration
        # (to join others) costs that iteration in latency, more than the system call.
        self.writer.write(frame)

    # --- deadlines: one timer per worker --------------------------------------------------

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(at, self._deadline, at), at

    def _deadline(self, at: float) -> None:
        """Calls are queued with non-decreasing deadlines (``WorkerProcess.accepts``), so
        the timer is moved on, not re-armed per call: it fires at most once per deadline
        missed or stale."""
        self._timer, self._timer_at = None, float("inf")
        if not self._pending:
            return
        late = min(self._pending, key=lambda p: p.deadline)
        if late.deadline > at:
            self._arm(late.deadline)
            return
        self.kill(
            PluginFailure("timeout", "no reply in time: worker killed"),
            late,
            crashed("another call of this tenant timed out"),
        )

    # --- replies ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._reader = transport

    def data_received(self, data: bytes) -> None:
        try:
            for reply in self._replies.feed(data):
                if self._closed:
                    return
                self._dispatch(reply)
        except protocol.FrameTooLarge as exc:
            self._broken("oversized_reply", f"{exc}: worker killed", "an oversized reply")
        except protocol.MalformedFrame as exc:
            self._broken("malformed_reply", f"{exc}: worker killed", "a malformed reply")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed, self.accepting = True, False
        self._end_hello(EOFError("the worker closed its pipe"))
        self.on_lost()

    def _dispatch(self, reply: protocol.Reply) -> None:
        if not self.hello.done():
            if reply.kind != protocol.HELLO or reply.call_id != 0:
                raise protocol.MalformedFrame("no hello from the worker")
            self.hello.set_result(reply.body)
            return
        if not self._pending or reply.call_id != self._pending[0].call_id:
            raise protocol.MalformedFrame("a reply to another request")
        pending, kind = self._pending[0], reply.kind
        if kind == protocol.NEED_SOURCE:
            if pending.with_source:
                raise protocol.MalformedFrame("asked for a source it was given")
            self._pending.popleft()
            self._send(pending, with_source=True)
            return
        output = protocol.text(reply.output)
        if kind == protocol.OK:
            value = protocol.decode(reply.body)
        elif kind in protocol.FAILURES:
            detail = protocol.text(reply.body)
        else:
            raise protocol.MalformedFrame("a reply of an unknown kind")
        self._pending.popleft()
        if not self._pending:
            self.latest_deadline = float("-inf")
        if not reply.flags & protocol.CACHED:
            self.loaded.pop(pending.key, None)
        if reply.flags & protocol.RETIRE:
            self.accepting = False
        if kind == protocol.OK:
            _settle(pending, (value, output))
        elif kind == protocol.OVERSIZED_REPLY:
            failure = PluginFailure("oversized_reply", f"{detail}: worker killed")
            self.kill(failure, pending, crashed("an oversized reply to another call"))
        else:
            _settle(pending, PluginFailure(protocol.FAILURES[kind], detail))

    def _broken(self, kind: str, detail: str, what: str) -> None:
        self._end_hello(protocol.MalformedFrame(detail))
        head = self._pending[0] if self._pending else None
        self.kill(PluginFailure(kind, detail), head, crashed(f"{what} to another call"))

    # --- ending -------------------------------------------------------------------------

    def kill(
        self,
        failure: PluginFailure | None,
        culprit: Pending | None = None,
        others: PluginFailure | None = None,
    ) -> None:
        """SIGKILL the worker's process group (anything it managed to start included); the
        calls in flight fail: ``culprit`` with ``failure``, the others with ``others``."""
        self.accepting = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if culprit is not None and failure is not None:
            _settle(culprit, failure)
        self.close(others or failure, abort=True)

    def close(self, failure: PluginFailure | None = None, *, abort: bool = False) -> None:
        """No more calls; its request pipe closed (an idle worker exits on it). The calls
        in flight fail with ``failure``."""
        self.accepting, self._closed = False, True
        if self.writer is not None and not self.writer.is_closing():
            if abort:
                self.writer.abort()
            else:
                self.writer.close()
        if self._reader is not None and not self._reader.is_closing():
            self._reader.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_hello(EOFError("the worker was stopped"))
        pending, self._pending = self._pending, deque()
        self.latest_deadline = float("-inf")
        for call in pending:
            _settle(call, failure or PluginFailure("crashed", "the worker was stopped"))

    def _end_hello(self, exc: Exception) -> None:
        if not self.hello.done():
            self.hello.set_exception(exc)
            self.hello.exception()  # no "never retrieved" warning if the start gave up


def _settle(pending: Pending, outcome: tuple[Any, str] | PluginFailure) -> None:
    if pending.future.done():
        return
    if isinstance(outcome, PluginFailure):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)
