"""Events and results to the broker, through the durable outbox, in order, losing nothing.

Publications side of the flow. ``emit`` stamps an event's envelope (session,
per-topic seq, event id, time), writes it to the outbox (on disk before it
returns) and wakes the pump; the pump publishes oldest first, waits for each
PUBACK and only then removes it. While the broker is unreachable messages
wait on disk, across restarts too; anything published late or again is marked
``replayed``. Presence, info and availability never go through here: their
current value is published on every connect instead.

A disk that refuses writes (full, failing, out of file descriptors) stops
nothing. What the outbox cannot take is held in memory, in order, behind what
is on disk, and published from memory while connected; an entry published but
not removable from the outbox is remembered, so it is not sent again. The pump
tries the disk again with a backoff (``STORAGE_RETRY``), and once it takes
writes moves what memory holds into the outbox, oldest first, and removes what
was published. A job's result keeps its promise through this: it is stored with
its settle mark in one transaction when the disk takes it, or, when it went out
from memory first, its job is marked settled once the disk works; only then is
the caller told (``on_settled``). Memory holds at most ``max_held`` messages:
past that the oldest events go (counted as dropped for ``memory``), results never.
What memory holds is lost if the daemon stops before the disk works again; the
stop logs how much.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from pydantic import BaseModel

from gatewayd.clock import Clock
from gatewayd.contract import StampFields, to_payload
from gatewayd.daemon.fault_log import FaultLog
from gatewayd.daemon.mqtt_link import MqttLink, MqttUnavailable
from gatewayd.daemon.outbox import MessageKind, NewMessage, Outbox, OutboxEntry, OutboxError
from gatewayd.daemon.supervisor import Spawn, Task, unsupervised
from gatewayd_drivers.backoff import BackoffSettings

__all__ = ["STORAGE_RETRY", "Publisher"]

_log = logging.getLogger(__name__)

_BATCH = 100

# Real seconds between tries of a disk that refused a write: soon after a glitch, and at
# most every few seconds, so a freed disk is used again within moments.
STORAGE_RETRY = BackoffSettings(first_s=0.5, max_s=5.0, factor=2.0, jitter=0.1)


def mark_replayed(payload: bytes) -> bytes:
    """The payload with ``replayed`` true, when it is an event envelope; as it was otherwise."""
    if b'"replayed":false' not in payload:
        return payload
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(body, dict) and body.get("replayed") is False:
        body["replayed"] = True
        return json.dumps(body, separators=(",", ":")).encode()
    return payload


@dataclass(eq=False)
class _Held:
    """Messages the outbox refused, to be stored in one transaction, and the job that storing
    them (or, once they went out from memory, marking it) settles."""

    messages: list[NewMessage]
    settles: str | None = None
    on_settled: Callable[[], None] | None = None
    # Publishes tried, per message: a second try is a resend, marked replayed.
    attempts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.attempts = [0] * len(self.messages)

    @property
    def has_result(self) -> bool:
        return any(m.kind is MessageKind.RESULT for m in self.messages)


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        clock: Clock,
        *,
        max_held: int | None = None,
        retry: BackoffSettings = STORAGE_RETRY,
    ) -> None:
        self.outbox = outbox
        self.link = link
        self.clock = clock
        self.max_held = max_held if max_held is not None else outbox.max_messages
        self._retry = retry
        self._seq: dict[tuple[int, str], int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        #: Events memory had no room for while the disk refused them, over this run.
        self.dropped_held = 0
        self._held: deque[_Held] = deque()
        # Outbox ids the broker acknowledged but that could not be removed from disk.
        self._unremoved: set[int] = set()
        self._writes = FaultLog(_log, "outbox writes")
        self._reads = FaultLog(_log, "outbox reads")

    # --- stamping and queueing --------------------------------------------------------------

    def session(self) -> int:
        """The session an event created now belongs to (see the envelope's ``session``)."""
        if self.link.connected or self.link.session:
            return self.link.session
        # Not connected yet in this run: reserve the number on disk now (the first connection
        # goes out with it), so a run that ends before connecting is never followed by one
        # that stamps the same session again.
        return self.link.sessions.reserve()

    def stamp(self, topic: str) -> StampFields:
        session = self.session()
        key = (session, topic)
        self._seq[key] = self._seq.get(key, 0) + 1
        return StampFields(
            session=session,
            seq=self._seq[key],
            ts=self.clock.wall(),
            replayed=not self.link.connected,
        )

    def emit(
        self, topic: str, build: Callable[[StampFields], BaseModel], *, retain: bool = False
    ) -> None:
        """Stamp, store and queue one event built by ``build`` from its envelope fields."""
        message = build(self.stamp(topic))
        self._queue(_Held([self._new(topic, to_payload(message), retain, MessageKind.EVENT)]))

    def emit_result(
        self,
        topic: str,
        document: BaseModel,
        *,
        settles: str | None = None,
        then: Sequence[tuple[str, Callable[[StampFields], BaseModel]]] = (),
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        """A job's result (retained, and kept ahead of events when space runs short) with the
        events that go with it (``then``: topic and builder, as for ``emit``), queued in one
        transaction that also marks job ``settles`` settled in the job ledger.

        ``on_settled`` is called once that mark is on disk: at once, or, while the disk
        refuses writes, when it takes them again.
        """
        messages = [self._new(topic, to_payload(document), True, MessageKind.RESULT)]
        for event_topic, build in then:
            payload = to_payload(build(self.stamp(event_topic)))
            messages.append(self._new(event_topic, payload, False, MessageKind.EVENT))
        self._queue(_Held(messages, settles, on_settled))

    def _new(self, topic: str, payload: bytes, retain: bool, kind: MessageKind) -> NewMessage:
        # Timed now, not when a disk that refused it takes it: for the age bound.
        return NewMessage(topic, payload, retain=retain, kind=kind, created_at=self.clock.wall())

    def _queue(self, held: _Held) -> None:
        # What memory holds goes to the disk first, if it takes it now: order is kept.
        self._store_held()
        if not self._held:
            try:
                self._store(held)
            except OutboxError as exc:
                self._writes.failed(exc, "holding messages in memory and publishing from there")
            else:
                self._wake.set()
                return
        self._held.append(held)
        self._bound_memory()
        self._wake.set()

    def _store(self, held: _Held) -> None:
        """Write ``held`` to the outbox in one transaction; ``OutboxError`` if the disk refuses."""
        entries = self.outbox.append_all(held.messages, settles=held.settles)
        self._writes.recovered()
        for entry, attempts in zip(entries, held.attempts, strict=True):
            if attempts:
                # Published from memory before, without an acknowledgement: a resend now.
                self._try_write(partial(self.outbox.mark_attempted, entry.id))
        if held.settles is not None and held.on_settled is not None:
            held.on_settled()

    def _store_held(self) -> None:
        """Move what memory holds into the outbox, oldest first, until the disk refuses."""
        while self._held:
            held = self._held[0]
            try:
                self._store(held)
            except OutboxError as exc:
                self._writes.failed(exc, "holding messages in memory and publishing from there")
                return
            except ValueError as exc:
                # Larger than the whole outbox: no disk will ever take it.
                _log.error("message dropped, it can never be stored error=%r", str(exc))
            self._held.popleft()

    def _bound_memory(self) -> None:
        excess = self.held() - self.max_held
        if excess <= 0:
            return
        kept: deque[_Held] = deque()
        dropped = 0
        for held in self._held:
            # Events oldest first, as the outbox's own bounds do; a result is never dropped.
            if dropped < excess and not held.has_result and held.messages:
                dropped += len(held.messages)
                continue
            kept.append(held)
        if dropped:
            self._held = kept
            if not self.dropped_held:
                _log.warning(
                    "memory full while the disk refuses writes, dropping the oldest events "
                    "max_held=%d",
                    self.max_held,
                )
            self.dropped_held += dropped

    def _try_write(self, write: Callable[[], object]) -> bool:
        try:
            write()
        except OutboxError as exc:
            self._writes.failed(exc, "holding messages in memory and publishing from there")
            return False
        self._writes.recovered()
        return True

    # --- what waits -------------------------------------------------------------------------

    def held(self) -> int:
        """Messages held in memory because the disk refused them."""
        return sum(len(h.messages) for h in self._held)

    def waiting(self) -> int:
        """Messages not yet acknowledged by the broker, on disk or in memory."""
        return max(0, self.outbox.depth() - len(self._unremoved)) + self.held()

    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting message was created; 0.0 when none waits."""
        ages = []
        if self.outbox.depth() > len(self._unremoved):
            with contextlib.suppress(OutboxError):
                ages.append(self.outbox.oldest_age_s())
        now = self.clock.wall()
        for held in self._held:
            for m in held.messages:
                if m.created_at is not None:
                    ages.append(max(0.0, (now - m.created_at).total_seconds()))
        return max(ages, default=0.0)

    # --- the pump ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Something may be publishable now (a connection came up)."""
        self._wake.set()

    def start(self, spawn: Spawn = unsupervised) -> None:
        if self._task is None:
            self._task = spawn(Task.OUTBOX_PUMP, self._pump)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._held:
            _log.error(
                "stopping with messages held in memory only, the disk refused them: they are "
                "lost held=%d",
                self.held(),
            )

    async def flush(self, timeout_s: float) -> bool:
        """Wait until nothing waits for the broker or ``timeout_s`` passed (real seconds)."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.waiting() > 0:
                    if not self.link.connected:
                        return False
                    self._wake.set()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False
        return True

    async def _pump(self) -> None:
        retry = self._retry.start()
        while True:
            if self._held or self._unremoved or self._reads.active:
                # The disk refused something: try it again at the latest after the backoff.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry.next_delay()):
                        await self._wake.wait()
            else:
                retry.reset()
                await self._wake.wait()
            self._wake.clear()
            self._store_held()
            self._remove_published()
            await self._drain()

    def _remove_published(self) -> None:
        for entry_id in sorted(self._unremoved):
            if not self._try_write(partial(self.outbox.ack, entry_id)):
                return
            self._unremoved.discard(entry_id)

    async def _drain(self) -> None:
        """Publish what waits while connected: the outbox oldest first, then memory."""
        after = 0
        while self.link.connected:
            try:
                entries = self.outbox.pending(_BATCH, after=after)
            except OutboxError as exc:
                self._reads.failed(exc, "publishing what memory holds, retrying the disk")
                entries = []
            else:
                self._reads.recovered()
            if not entries:
                await self._send_held()
                return
            after = entries[-1].id
            if not await self._send(entries):
                return

    async def _send(self, entries: list[OutboxEntry]) -> bool:
        for entry in entries:
            if entry.id in self._unremoved:
                continue
            payload = mark_replayed(entry.payload) if entry.is_resend else entry.payload
            self._try_write(partial(self.outbox.mark_attempted, entry.id))
            try:
                await self.link.publish(entry.topic, payload, qos=entry.qos, retain=entry.retain)
            except MqttUnavailable as exc:
                _log.info("publishing paused, %d waiting: %s", self.waiting(), exc)
                return False
            if not self._try_write(partial(self.outbox.ack, entry.id)):
                self._unremoved.add(entry.id)
            self.published += 1
        return True

    async def _send_held(self) -> bool:
        for held in list(self._held):
            while held.messages:
                if all(h is not held for h in self._held):
                    # The disk took it meanwhile: the outbox publishes the rest.
                    break
                message, attempts = held.messages[0], held.attempts[0]
                held.attempts[0] += 1
                payload = mark_replayed(message.payload) if attempts else message.payload
                try:
                    await self.link.publish(
                        message.topic, payload, qos=message.qos, retain=message.retain
                    )
                except MqttUnavailable as exc:
                    _log.info("publishing paused, %d waiting: %s", self.waiting(), exc)
                    return False
                self.published += 1
                if held.messages and held.messages[0] is message:
                    held.messages.pop(0)
                    held.attempts.pop(0)
        # Sent in full; one that settles a job stays until the disk takes its settle mark.
        self._held = deque(h for h in self._held if h.messages or h.settles is not None)
        return True
