"""Delivery to one push receiver (RFC 8935): its lease, its queue, retries and pausing.

The queue is the tenant's events after the receiver's cursor, read a page at a time, so
memory stays bounded and a restart loses nothing. One process at a time delivers to a
receiver, in order: the one holding its lease (``Store.claim_receiver``), renewed while
it works. A SET is sent until the receiver takes it (``2xx``) or refuses that SET (an
RFC 8935 error), with back-off in between (``backoff``); a receiver that has failed
without a break for its tenant's ``receivers.pause_after_s`` is paused until a tenant
admin writes it again. The cursor and the delivery log are written in batches
(``FLUSH_INTERVAL_S``): after a crash, at most the SETs of the last batch are sent again,
which at-least-once delivery allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass

import structlog

from app.directory import TenantView
from app.models import DeliveryAttempt, Event, Receiver, ReceiverState
from app.outbound_channel import PostChannel
from app.propagation import backoff, rfc8935
from app.propagation.rfc8417 import event_uri
from app.propagation.signing_keys import sign_event
from app.services import Services

log = structlog.get_logger("revocation.delivery")

PAGE = 100
"""Events read from the store at a time."""
KEEP_LOG = 100
"""Delivery log entries kept per receiver."""
FLUSH_INTERVAL_S = 1.0
"""Delivered SETs are recorded at most this long after they are delivered."""
FLUSH_ENTRIES = 50
IDLE_WAIT_S = 10.0
"""The longest a caught-up worker waits for new events before looking again (and
renewing its lease)."""
PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class PushSettings:
    """What every receiver's worker in a process shares."""

    services: Services
    owner: str
    """This process's id in the receivers' leases."""
    gate: asyncio.Semaphore
    """Bounds the POSTs in flight across the process."""
    lease_s: int = 30
    timeout_s: float = 5.0
    """The longest a receiver may take to answer a POST."""


class LeaseLost(Exception):
    """Another process delivers to this receiver now (or it is gone)."""


class Paused(Exception):
    """The receiver is paused: nothing more until a tenant admin writes it again."""


class PushWorker:
    """Delivers the tenant's events to one receiver for as long as the task runs."""

    def __init__(self, settings: PushSettings, receiver: Receiver) -> None:
        assert receiver.url is not None, "a push receiver has a URL"
        self.settings = settings
        self.services = settings.services
        self.receiver = receiver
        self.url = receiver.url
        self.types = frozenset(receiver.events)
        # One kept connection per receiver, to an address checked for its host name.
        self.channel = PostChannel(self.url, timeout_s=settings.timeout_s)
        self.state: ReceiverState | None = None
        self.pending: list[DeliveryAttempt] = []
        self.dirty = False
        self.flushed_at = time.monotonic()
        self.record_on_exit = True
        """Write what was delivered when the task ends (not when the receiver changed)."""
        self._log = log.bind(tenant_id=receiver.tenant_id, receiver_id=receiver.receiver_id)

    # --- the task -----------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled, or until the receiver is paused."""
        try:
            while True:
                try:
                    self.pending, self.dirty = [], False
                    self.state = await self._claim()
                    if self.state.status == PAUSED:
                        return
                    await self._deliver()
                except LeaseLost:
                    self._log.info("receiver_lease_lost")
                except Paused:
                    return
                except Exception:
                    # A store outage or a bug: start again from what the store holds.
                    self._log.exception("receiver_delivery_error")
                    await asyncio.sleep(backoff.delay_s(3))
        finally:
            await self._release()
            await self.channel.close()

    async def _claim(self) -> ReceiverState:
        """Wait until this process holds the receiver's lease."""
        r = self.receiver
        while True:
            now = self.services.clock()
            state = await self.services.store.claim_receiver(
                r.tenant_id, r.receiver_id, self.settings.owner, now, now + self.settings.lease_s
            )
            if state is not None:
                return state
            await asyncio.sleep(self.settings.lease_s / 3)

    async def _renew(self) -> None:
        """Extend the lease once half of it has gone."""
        state = self._state
        now = self.services.clock()
        if state.lease_until - now > self.settings.lease_s / 2:
            return
        r = self.receiver
        claimed = await self.services.store.claim_receiver(
            r.tenant_id, r.receiver_id, self.settings.owner, now, now + self.settings.lease_s
        )
        if claimed is None:
            raise LeaseLost
        self.state = dataclasses.replace(state, lease_until=claimed.lease_until)

    async def _release(self) -> None:
        """Write what was delivered and let another process take over at once."""
        if self.state is None or self.state.lease_owner != self.settings.owner:
            return
        with contextlib.suppress(Exception):
            if self.record_on_exit:
                await self._flush()
            now = self.services.clock()
            r = self.receiver
            await self.services.store.claim_receiver(
                r.tenant_id, r.receiver_id, self.settings.owner, now, now
            )

    @property
    def _state(self) -> ReceiverState:
        assert self.state is not None, "claimed first"
        return self.state

    # --- the queue ----------------------------------------------------------------------
    async def _deliver(self) -> None:
        await self._wait_for_back_off()
        tenant_id = self.receiver.tenant_id
        notifier = self.services.notifier
        while True:
            await self._renew()
            stamp = notifier.stamp(tenant_id)
            tenant = self.services.directory.tenant(tenant_id)
            events = []
            if tenant is not None:
                events = await self.services.store.list_events(tenant_id, self._state.cursor, PAGE)
            if not events:
                if self.dirty:
                    await notifier.wait(tenant_id, stamp, self._until_flush())
                    if self._flush_due():
                        await self._flush()
                elif not await notifier.wait(tenant_id, stamp, IDLE_WAIT_S) and notifier.stopped:
                    # The process is shutting down: waits return at once; stop is near.
                    await asyncio.sleep(IDLE_WAIT_S)
                continue
            assert tenant is not None
            for event in events:
                if event_uri(event) in self.types:
                    await self._deliver_one(tenant, event)
                else:
                    self.state = dataclasses.replace(self._state, cursor=event.id)
                    self.dirty = True
                if self._flush_due():
                    await self._flush()

    async def _deliver_one(self, tenant: TenantView, event: Event) -> None:
        """Send the event's SET until the receiver takes or refuses it."""
        token = await sign_event(self.services, tenant, self.receiver, event, self.services.clock())
        authorization = self._authorization(tenant)
        while True:
            async with self.settings.gate:
                result = await rfc8935.push(
                    self.channel, self.services.host_rules(tenant), token, authorization
                )
            now = self.services.clock()
            entry = DeliveryAttempt(
                now,
                event.id,
                result.outcome.value,
                result.status,
                result.detail,
                result.duration_ms,
            )
            self.pending.append(entry)
            self.dirty = True
            state = self._state
            if result.outcome is not rfc8935.Outcome.FAILED:
                delivered = result.outcome is rfc8935.Outcome.DELIVERED
                self.state = dataclasses.replace(
                    state,
                    cursor=event.id,
                    delivered=state.delivered + delivered,
                    failing_since=None,
                    attempts=0,
                    next_attempt_at=0,
                    last_error=None if delivered else result.detail,
                )
                if not delivered:
                    self._log.info("set_error", event_id=event.id, detail=result.detail)
                return
            await self._failed(tenant, event, result, now)

    async def _failed(
        self, tenant: TenantView, event: Event, result: rfc8935.PushResult, now: int
    ) -> None:
        """Record a failed attempt; pause the receiver, or wait before the next one."""
        state = self._state
        since = state.failing_since if state.failing_since is not None else now
        attempts = state.attempts + 1
        pause_after = tenant.settings.receiver_pause_after_s
        self._log.info(
            "set_delivery_failed",
            event_id=event.id,
            status=result.status,
            detail=result.detail,
            attempts=attempts,
        )
        if now - since >= pause_after:
            reason = f"failing for {now - since} s (receivers.pause_after_s {pause_after}): "
            reason += result.detail or "no answer"
            self.state = dataclasses.replace(
                state,
                status=PAUSED,
                paused_reason=reason,
                failing_since=since,
                attempts=attempts,
                last_error=result.detail,
            )
            self.pending.append(DeliveryAttempt(now, event.id, PAUSED, detail=reason))
            self._log.warning("receiver_paused", event_id=event.id, reason=reason)
            await self._flush()
            raise Paused
        # Never past the pause: a receiver is paused on time, whatever the back-off.
        wait = min(backoff.delay_s(attempts), since + pause_after - now)
        self.state = dataclasses.replace(
            state,
            failing_since=since,
            attempts=attempts,
            next_attempt_at=now + math.ceil(wait),
            last_error=result.detail,
        )
        await self._flush()
        await self._sleep(wait)

    async def _wait_for_back_off(self) -> None:
        """A receiver taken over while failing waits out the back-off its last owner set."""
        wait = self._state.next_attempt_at - self.services.clock()
        if self._state.attempts and wait > 0:
            await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, renewing the lease meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.settings.lease_s / 3))
            await self._renew()

    def _authorization(self, tenant: TenantView) -> str | None:
        sealed = self.receiver.authorization_sealed
        if sealed is None:
            return None
        return self.services.keys.open_secret(
            tenant.tenant_id,
            tenant.record.key_salt,
            sealed,
            f"receiver:{self.receiver.receiver_id}",
        )

    # --- recording ----------------------------------------------------------------------
    def _flush_due(self) -> bool:
        return self.dirty and (
            len(self.pending) >= FLUSH_ENTRIES
            or time.monotonic() - self.flushed_at >= FLUSH_INTERVAL_S
        )

    def _until_flush(self) -> float:
        return max(0.0, FLUSH_INTERVAL_S - (time.monotonic() - self.flushed_at))

    async def _flush(self) -> None:
        """Write the state and the log entries since the last write, in one transaction."""
        if not self.dirty:
            return
        written = await self.services.store.record_delivery(
            self._state, self.settings.owner, self.pending, KEEP_LOG
        )
        self.pending, self.dirty = [], False
        self.flushed_at = time.monotonic()
        if not written:
            raise LeaseLost
