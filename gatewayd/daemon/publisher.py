"""Events and results to the broker, through the durable outbox, in order, losing nothing.

Publications side of the flow. ``emit`` stamps an event's envelope (session, per-topic seq,
event id, time) and queues it; ``emit_result`` queues a job's result with the events that go
with it. What was queued during one turn of the event loop is written to the outbox at the
start of the next, in one transaction (group commit, ``commit``), and only then can the pump
see it: nothing is published before it is written. When the pump is waiting, it makes that
commit itself and publishes what it stored straight from memory; it reads the outbox back
only when something else changed it (a bound dropped entries, a drain ended early).

A commit that carries a result is fsynced before anyone is told of it; a commit of events
alone is fsynced by ``Outbox.sync`` within ``event_sync_s`` (half a second), so events reach
the broker without waiting for the disk. The pump publishes oldest first with up to
``window`` messages awaiting their PUBACK at once, and removes the acknowledged ones from the
outbox in batches. While the broker is unreachable messages wait on disk, across restarts
too; anything published late or again is marked ``replayed``. Presence, info and
availability never go through here: their current value is published on every connect
instead.

Why events are not fsynced before they are published: an fsync costs 0.5 to 3 ms here (an SD
card's, several to tens), on the loop, for each commit. One per commit doubled an event's
latency at a few hubs (the commit was most of it), and at 1,024 hubs held the loop for half
its time, queueing every port's events behind it. Written without an fsync, an event survives
a crash or a SIGKILL of the daemon at once (the OS has it); only a power cut in the next
``event_sync_s`` can lose it, the tail of the running commentary, as it can lose what the hub
sent that the kit had not read yet. A result, the thing a job is for, keeps the stronger
promise: it is on disk with its settle mark, fsynced with every event before it, before
``on_settled`` tells anyone or the pump publishes it.

Why group commit on the loop, and not a writer thread: deferring the write to the next loop
turn gathers every event of a burst into one transaction, so the commits per second stay at
most one per loop turn whatever the event rate. A thread would also take the writes off the
loop, but then the one SQLite connection is shared between threads, or two connections fight
for SQLite's write lock (with the outbox's acks and the job ledger on the loop), and the
order between append, publish and ack becomes a thing to get right across threads; the loop
keeps it by construction. What the deferral costs is one loop turn: an event emitted just
before a SIGKILL may not be stored, as one that had not been read from the hub yet would not
be.

Why several in flight: one PUBLISH at a time waits a round trip per message; with ``window``
in flight the pump keeps the connection busy. Order per topic holds: the publishes are issued
in id order on one connection, and MQTT delivers QoS 1 messages of a connection in the order
they were sent. The pump takes PUBACKs in that same order; when one fails (the link dropped),
it and everything issued after it stays in the outbox, and is published again, marked
``replayed``, once connected, even when a later one's PUBACK did arrive: a documented replay,
never a hole or a reordering. One timer bounds the wait for the oldest PUBACK
(``puback_timeout_s``) rather than one per publish, which cost as much as handling the PUBACK.
Whether a message was tried before is kept in memory for this run; an entry from an earlier
run is a resend anyway (``OutboxEntry.from_earlier_run``).

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

from pydantic import BaseModel

from gatewayd.clock import Clock
from gatewayd.contract import StampFields, to_payload
from gatewayd.daemon.fault_log import FaultLog
from gatewayd.daemon.mqtt_link import PUBLISH_TIMEOUT_S, MqttLink, MqttUnavailable
from gatewayd.daemon.outbox import (
    CHECKPOINT_S,
    EVENT_SYNC_S,
    Group,
    MessageKind,
    NewMessage,
    Outbox,
    OutboxError,
    Publishable,
)
from gatewayd.daemon.supervisor import Spawn, Task, unsupervised
from gatewayd_drivers.backoff import BackoffSettings

__all__ = ["STORAGE_RETRY", "Publisher"]

_log = logging.getLogger(__name__)

# Entries read from the outbox per query while draining.
_READ_BATCH = 100
# Acknowledged entries removed from the outbox per transaction, at most. A crash between a
# PUBACK and the removal resends the message (marked replayed): a kill mid-drain resends at
# most this many and a window. Measured on the drain bench: 20 a batch drained 6 % slower
# than 100, 50 about 2 % slower.
_ACK_BATCH = 50

# Real seconds between tries of a disk that refused a write: soon after a glitch, and at
# most every few seconds, so a freed disk is used again within moments.
STORAGE_RETRY = BackoffSettings(first_s=0.5, max_s=5.0, factor=2.0, jitter=0.1)

# What an emitter builds from the envelope fields: a contract model, or its payload already
# serialized by a builder of the contract (``hub_event_payload``, ``job_event_payload``).
Built = BaseModel | bytes


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


def _payload(built: Built) -> bytes:
    return built if isinstance(built, bytes) else to_payload(built)


@dataclass(eq=False)
class _Held:
    """Messages to be stored in one group (all or none), and the job that storing them (or,
    once they went out from memory, marking it) settles. Queued by ``emit`` until the next
    commit, and held in memory while the disk refuses them."""

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


@dataclass(eq=False, slots=True)
class _InFlight:
    """An outbox entry published and awaiting its PUBACK."""

    entry: Publishable
    task: asyncio.Task[None]
    issued_at: float  # loop time
    # Set by the drain's watchdog when it cancelled the task for a PUBACK that did not come.
    timed_out: bool = False

    def abandon(self) -> None:
        """Forget the publish: it goes again later, marked replayed (it was sent, or the link
        went down before it could be: either way it goes out late)."""
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            # Retrieved, so that asyncio does not log it as never retrieved.
            self.task.exception()


def _timed_out(head: _InFlight) -> bool:
    """The head's task was cancelled by the watchdog, and the drain itself is not being
    cancelled (a stop): the wait for a PUBACK timed out."""
    task = asyncio.current_task()
    return head.timed_out and (task is None or not task.cancelling())


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        link: MqttLink,
        clock: Clock,
        *,
        max_held: int | None = None,
        retry: BackoffSettings = STORAGE_RETRY,
        window: int | None = None,
        event_sync_s: float = EVENT_SYNC_S,
    ) -> None:
        """``window``: publishes awaiting their PUBACK at once; default the link's
        ``max_inflight`` (``[mqtt] max_inflight``). ``event_sync_s``: real seconds within
        which events written without an fsync get one."""
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        if not event_sync_s >= 0:
            raise ValueError(f"event_sync_s must be 0 or more, got {event_sync_s}")
        self.outbox = outbox
        self.link = link
        self.clock = clock
        self.max_held = max_held if max_held is not None else outbox.max_messages
        self._retry = retry
        self._window = window
        self._seq: dict[tuple[int, str], int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        #: Events memory had no room for while the disk refused them, over this run.
        self.dropped_held = 0
        #: Transactions that stored queued messages, over this run.
        self.commits = 0
        # Emitted, not yet committed: the next commit stores them all in one transaction.
        self._queued: list[_Held] = []
        self._commit_soon: asyncio.Handle | None = None
        self._commit_loop: asyncio.AbstractEventLoop | None = None
        self.event_sync_s = event_sync_s
        self._sync_soon: asyncio.TimerHandle | None = None
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_due = 0.0
        self._syncing: asyncio.Task[None] | None = None
        # A sync is checkpointing: commits and removals wait for it (``_sync_in_thread``).
        self._holding = False
        # Set by a commit while the pump waits for its window's head (``_head_or_more``).
        self._more: asyncio.Future[None] | None = None
        # The pump waits where it commits as soon as it wakes: ``_queue`` wakes it rather
        # than scheduling a commit of its own, which would cost an event a loop turn.
        self._pump_commits = False
        # The pump's read cursor, kept from one drain to the next while every entry up to
        # it was acknowledged: each entry with an id up to ``_after`` was read. ``_read_dry_at``
        # is the commit count when a read last found nothing after it (None: unknown), and
        # ``_fresh`` what every commit since stored, in id order: the pump takes it from
        # memory instead of reading it back.
        self._after = 0
        self._read_dry_at: int | None = None
        self._fresh: list[Publishable] = []
        # ``outbox.inserted`` at that read: an entry stored by anyone else since shows.
        self._dry_inserted = 0
        self._held: deque[_Held] = deque()
        # Outbox ids the broker acknowledged but that could not be removed from disk.
        self._unremoved: dict[int, Publishable] = {}
        # Outbox ids published (or being published) in this run without an acknowledgement
        # taken yet: a second publish of one is a resend. Kept in memory only: an entry of an
        # earlier run is a resend anyway.
        self._attempted: set[int] = set()
        self._writes = FaultLog(_log, "outbox writes")
        self._reads = FaultLog(_log, "outbox reads")
        #: Real seconds to wait for a PUBACK before the link counts as gone.
        self.puback_timeout_s = PUBLISH_TIMEOUT_S

    @property
    def window(self) -> int:
        """Publishes awaiting their PUBACK at once, at most."""
        return self._window if self._window is not None else self.link.max_inflight

    # --- stamping and queueing --------------------------------------------------------------

    def session(self) -> int:
        """The session an event created now belongs to (see the envelope's ``session``)."""
        if self.link.connected or self.link.session:
            return self.link.session
        # Not connected yet in this run: reserve the number on disk now (the first connection
        # goes out with it), so a run that ends before connecting is never followed by one
        # that stamps the same session again. Reserved once: later calls get the same number
        # from memory, without reading the file again.
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
        self, topic: str, build: Callable[[StampFields], Built], *, retain: bool = False
    ) -> None:
        """Stamp and queue one event built by ``build`` from its envelope fields; it is stored
        with the next commit (at the latest one loop turn from now)."""
        payload = _payload(build(self.stamp(topic)))
        self._queue(_Held([self._new(topic, payload, retain, MessageKind.EVENT)]))

    def emit_result(
        self,
        topic: str,
        document: BaseModel,
        *,
        settles: str | None = None,
        then: Sequence[tuple[str, Callable[[StampFields], Built]]] = (),
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        """A job's result (retained, and kept ahead of events when space runs short) with the
        events that go with it (``then``: topic and builder, as for ``emit``), queued to be
        stored in one transaction that also marks job ``settles`` settled in the job ledger.

        ``on_settled`` is called once that mark is on disk (fsynced): at the next commit, or,
        while the disk refuses writes, when it takes them again.
        """
        messages = [self._new(topic, to_payload(document), True, MessageKind.RESULT)]
        for event_topic, build in then:
            payload = _payload(build(self.stamp(event_topic)))
            messages.append(self._new(event_topic, payload, False, MessageKind.EVENT))
        self._queue(_Held(messages, settles, on_settled))

    def _new(self, topic: str, payload: bytes, retain: bool, kind: MessageKind) -> NewMessage:
        # Timed now, not when a disk that refused it takes it: for the age bound.
        return NewMessage(topic, payload, retain=retain, kind=kind, created_at=self.clock.wall())

    def _queue(self, held: _Held) -> None:
        # Refused now, to the caller, as an append always did: the commit can then store the
        # whole batch in one transaction.
        self.outbox.check(held.messages)
        self._queued.append(held)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop to defer to (a tool, a test): store now.
            self.commit()
            return
        if self._holding:
            return  # committed when the checkpoint ends (see _sync_in_thread)
        if self._pump_commits:
            # The pump commits at its next step and publishes at once.
            self._wake_pump()
            return
        # (A commit scheduled on a loop that has since ended would never run: schedule again.)
        if self._commit_soon is None or self._commit_loop is not loop:
            self._commit_soon = loop.call_soon(self.commit)
            self._commit_loop = loop

    def commit(self) -> None:
        """Store everything queued and not stored yet, in one transaction (one fsync).

        Runs by itself one loop turn after the first ``emit`` of a batch; call it to store at
        once (before closing the outbox, or to look at the disk in a test). What memory holds
        goes first, and when the disk refuses, the batch joins it: order is kept.
        """
        if self._commit_soon is not None:
            self._commit_soon.cancel()
            self._commit_soon = None
        batch, self._queued = self._queued, []
        if not batch:
            return
        self._store_held()
        if not self._held:
            try:
                self._store(batch)
            except OutboxError as exc:
                self._writes.failed(exc, "holding messages in memory and publishing from there")
            except ValueError:
                # Cannot happen (``_queue`` checked every group): store them one by one, so
                # that only a wrong one is dropped, with a log line.
                self._held.extend(batch)
                self._store_held()
                self._wake.set()
                return
            else:
                self._wake_pump()
                return
        self._held.extend(batch)
        self._bound_memory()
        self._wake.set()

    def _wake_pump(self) -> None:
        self._wake.set()
        if self._more is not None and not self._more.done():
            self._more.set_result(None)

    def _store(self, batch: Sequence[_Held]) -> None:
        """Write ``batch`` to the outbox in one transaction; ``OutboxError`` if the disk
        refuses. Then tell each settled job's caller, its result being on disk."""
        outbox = self.outbox
        depth = outbox.depth()
        foreign = outbox.inserted != self._dry_inserted + len(self._fresh)
        stored = outbox.append_groups([Group(h.messages, h.settles) for h in batch])
        self.commits += 1
        if (
            self._read_dry_at is not None
            and not foreign
            and outbox.depth() == depth + sum(len(entries) for entries in stored)
        ):
            # Nothing was dropped (by a bound) in this transaction, and nobody else stored
            # anything since the pump's last read: what it would read back is exactly what
            # memory holds, the entries of every commit since.
            self._fresh.extend(
                Publishable(e.id, e.topic, e.payload, e.qos, e.retain, False, e.size)
                for entries in stored
                for e in entries
            )
        else:
            self._read_dry_at = None  # the pump reads the outbox again, from its cursor
            self._fresh.clear()
        self._writes.recovered()
        self._schedule_sync()
        for held, entries in zip(batch, stored, strict=True):
            for entry, attempts in zip(entries, held.attempts, strict=True):
                if attempts:
                    # Published from memory before, without an acknowledgement: a resend now.
                    self._attempted.add(entry.id)
        for held in batch:
            if held.settles is not None and held.on_settled is not None:
                try:
                    held.on_settled()
                except Exception:
                    # One caller's failure must not keep the others of the batch untold.
                    _log.exception("on_settled failed job=%s", held.settles)

    def _schedule_sync(self) -> None:
        """Fsync what was just written within ``event_sync_s``, once for all of it; with
        nothing to fsync but a checkpoint still owed, run the sync that will be due for it."""
        if self._syncing is not None:
            return  # it schedules the next one when it ends
        if self.outbox.unsynced:
            delay = self.event_sync_s
        elif self.outbox.needs_sync:
            delay = CHECKPOINT_S
        else:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop to defer to (a tool, a test): fsync now.
            self.sync()
            return
        due = loop.time() + delay
        if self._sync_soon is not None and self._sync_loop is loop:
            if self._sync_due <= due:
                return
            self._sync_soon.cancel()
        self._sync_soon = loop.call_at(due, self._start_sync)
        self._sync_loop = loop
        self._sync_due = due

    def _start_sync(self) -> None:
        self._sync_soon = None
        if self._syncing is None:
            self._syncing = asyncio.create_task(self._sync_in_thread(), name="outbox_sync")

    async def _sync_in_thread(self) -> None:
        # In a worker thread: an fsync may take tens of milliseconds on an SD card, and the
        # loop goes on reading ports and publishing meanwhile. When the sync checkpoints, the
        # loop writes nothing meanwhile: emitted messages wait in memory (``_queue``) and
        # acknowledged ones stay listed in ``_unremoved`` (``_remove``), so the checkpoint
        # reaches the end of the log, and the next commit starts the log again from its
        # beginning. A log written to during every checkpoint is never started again: it grew
        # by 16 MB a second at 1,024 hubs. An fsync alone needs no such hold.
        checkpoint = self.outbox.checkpoint_due()
        self._holding = checkpoint
        try:
            await asyncio.to_thread(self.sync, checkpoint)
        finally:
            self._syncing = None
            if self._holding:
                self._holding = False
                self.commit()
                if self._unremoved:
                    self._wake.set()
        # What a sync that could not finish left gets the next one.
        self._schedule_sync()

    def sync(self, checkpoint: bool | None = None) -> None:
        """Fsync the events written without one (``Outbox.sync``); a disk that refuses is
        tried again after ``event_sync_s``."""
        try:
            self.outbox.sync(checkpoint=checkpoint)
        except OutboxError as exc:
            self._writes.failed(exc, "events written but not fsynced, trying again")

    def _store_held(self) -> None:
        """Move what memory holds into the outbox, oldest first, until the disk refuses."""
        while self._held:
            held = self._held[0]
            try:
                self._store([held])
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

    # --- what waits -------------------------------------------------------------------------

    def held(self) -> int:
        """Messages held in memory because the disk refused them."""
        return sum(len(h.messages) for h in self._held)

    def queued(self) -> int:
        """Messages emitted and not stored yet: the next commit takes them."""
        return sum(len(h.messages) for h in self._queued)

    def waiting(self) -> int:
        """Messages not yet acknowledged by the broker, on disk, queued or in memory."""
        return max(0, self.outbox.depth() - len(self._unremoved)) + self.held() + self.queued()

    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting message was created; 0.0 when none waits."""
        ages = []
        if self.outbox.depth() > len(self._unremoved):
            with contextlib.suppress(OutboxError):
                ages.append(self.outbox.oldest_age_s())
        now = self.clock.wall()
        for held in (*self._held, *self._queued):
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
        if self._syncing is not None:
            # Its thread cannot be interrupted: let it finish (the outbox's own lock would
            # make a close wait for it anyway).
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._syncing)
        # What was emitted and acknowledged up to now is stored, removed and fsynced, not
        # left to a loop turn or a timer that may not come.
        self.commit()
        self._remove_published()
        if self._sync_soon is not None:
            self._sync_soon.cancel()
            self._sync_soon = None
        self.sync()
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

    def _forget_cursor(self) -> None:
        """The next drain reads from the oldest entry again."""
        self._after = 0
        self._read_dry_at = None
        self._fresh.clear()

    def _commit_now(self) -> None:
        """The pump's own commit on waking (see ``_pump_commits``), unless a checkpoint
        holds the writes."""
        if not self._holding:
            self.commit()

    async def _pump(self) -> None:
        retry = self._retry.start()
        while True:
            self._pump_commits = True
            try:
                if self._held or self._unremoved or self._reads.active:
                    # The disk refused something: try it again at the latest after the backoff.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(retry.next_delay()):
                            await self._wake.wait()
                else:
                    retry.reset()
                    await self._wake.wait()
            finally:
                self._pump_commits = False
            self._commit_now()
            self._wake.clear()
            self._store_held()
            self._remove_published()
            await self._drain()

    def _remove_published(self) -> None:
        if self._unremoved:
            self._remove([self._unremoved[i] for i in sorted(self._unremoved)])

    def _remove(self, entries: list[Publishable]) -> None:
        """The broker acknowledged these: remove them from the outbox in one transaction, or
        remember them (not to be sent again) when the disk refuses."""
        if not entries:
            return
        if self._holding:
            # Removed when the checkpoint ends (see _sync_in_thread); never published again
            # meanwhile.
            self._unremoved.update((e.id, e) for e in entries)
            self._attempted.difference_update(e.id for e in entries)
            return
        try:
            self.outbox.ack_all(entries)
        except OutboxError as exc:
            self._writes.failed(exc, "holding messages in memory and publishing from there")
            self._unremoved.update((e.id, e) for e in entries)
        else:
            self._writes.recovered()
            self._schedule_sync()
            for e in entries:
                self._unremoved.pop(e.id, None)
        self._attempted.difference_update(e.id for e in entries)

    async def _drain(self) -> None:
        """Publish what waits while connected: the outbox oldest first, then memory."""
        if await self._drain_outbox():
            await self._send_held()

    def _read(self, after: int) -> list[Publishable] | None:
        """Up to a batch of entries after ``after``; None when the disk refuses the read."""
        try:
            entries = self.outbox.publishable(_READ_BATCH, after=after)
        except OutboxError as exc:
            self._reads.failed(exc, "publishing what memory holds, retrying the disk")
            return None
        self._reads.recovered()
        return entries

    async def _drain_outbox(self) -> bool:
        """Publish the outbox oldest first, up to ``window`` awaiting their PUBACK at once;
        True once it is all out (or unreadable) with the link still up."""
        window = self.window
        loop = asyncio.get_running_loop()
        in_flight: deque[_InFlight] = deque()
        ready: deque[Publishable] = deque()
        acknowledged: list[Publishable] = []
        clean = False
        # One timer for the whole window, not one per publish (each would cost as much as a
        # PUBACK's handling): it fires at the oldest publish's deadline, or moves to the new
        # oldest's when that one was acknowledged meanwhile.
        timeout_s = self.puback_timeout_s
        watchdog: asyncio.TimerHandle | None = None

        def overdue() -> None:
            nonlocal watchdog
            watchdog = None
            now = loop.time()
            for waiting in in_flight:
                if waiting.task.done():
                    continue  # acknowledged (or failed): the drain takes it in its turn
                due = waiting.issued_at + timeout_s
                if now < due:
                    watchdog = loop.call_at(due, overdue)
                else:
                    waiting.timed_out = True
                    waiting.task.cancel()
                return

        try:
            while True:
                # Fill the window in id order. A publish sends its PUBLISH in its task's first
                # step, and tasks take their first steps in the order they were created: the
                # broker receives the messages in id order.
                while len(in_flight) < window and self.link.connected:
                    if not ready:
                        if self._read_dry_at == self.commits:
                            break
                        if self._read_dry_at is not None:
                            # Every commit since the last read is in memory: no read back.
                            self._read_dry_at = self.commits
                            self._dry_inserted += len(self._fresh)
                            if not self._fresh:
                                break  # those commits only marked jobs settled
                            ready.extend(self._fresh)
                            self._after = self._fresh[-1].id
                            self._fresh.clear()
                            continue
                        after = self._after
                        entries = self._read(after)
                        if not entries:
                            if entries is not None:
                                self._read_dry_at = self.commits
                                self._dry_inserted = self.outbox.inserted
                                if after == 0:
                                    self._attempted.clear()  # nothing is left to resend
                            break
                        if after == 0:
                            # Ids below the oldest pending one are gone (bounds dropped them).
                            first = entries[0].id
                            self._attempted = {i for i in self._attempted if i >= first}
                        self._after = entries[-1].id
                        ready.extend(e for e in entries if e.id not in self._unremoved)
                        continue
                    in_flight.append(self._issue(ready.popleft(), loop.time()))
                    if watchdog is None:
                        watchdog = loop.call_at(in_flight[0].issued_at + timeout_s, overdue)
                if not in_flight:
                    # Everything read was acknowledged: the next drain goes on from here.
                    clean = self.link.connected and not ready
                    return self.link.connected
                head = in_flight[0]
                if not head.task.done():
                    if (
                        self.link.connected
                        and len(in_flight) < window
                        and (ready or self._read_dry_at != self.commits)
                    ):
                        continue  # more to publish (committed meanwhile): into the window
                    await self._head_or_more(head)
                    continue
                # PUBACKs are taken in the order the publishes were issued.
                try:
                    head.task.result()
                except (MqttUnavailable, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and not _timed_out(head):
                        raise
                    # This one and every one issued after it stay in the outbox and go again,
                    # marked replayed: a PUBACK of a later one does not count without this one.
                    why = exc if isinstance(exc, MqttUnavailable) else "no PUBACK in time"
                    _log.info("publishing paused, %d waiting: %s", self.waiting(), why)
                    return False
                in_flight.popleft()
                acknowledged.append(head.entry)
                self.published += 1
                if len(acknowledged) >= _ACK_BATCH or not in_flight:
                    self._remove(acknowledged)
                    acknowledged = []
        finally:
            if watchdog is not None:
                watchdog.cancel()
            for abandoned in in_flight:
                abandoned.abandon()
            self._remove(acknowledged)
            if not clean:
                # Something read was not acknowledged (or not published): from the oldest.
                self._forget_cursor()

    async def _head_or_more(self, head: _InFlight) -> None:
        """Wait until the head's publish is done or a commit stored more to publish.

        Not for the head alone: new messages go out while older ones await their PUBACK.
        A pump that sent nothing until the head's PUBACK came left the connection idle in
        one direction, and a broker that does not disable Nagle's algorithm (mosquitto's
        default) then held its next PUBACK until the kit's delayed TCP ACK, 40 ms later:
        every event waited for it at 1,024 hubs.
        """
        more = asyncio.get_running_loop().create_future()

        def done(_: object = None) -> None:
            if not more.done():
                more.set_result(None)

        self._more = more
        head.task.add_done_callback(done)
        self._pump_commits = True
        try:
            await more
        finally:
            self._pump_commits = False
            head.task.remove_done_callback(done)
            self._more = None
        self._commit_now()

    def _issue(self, entry: Publishable, now: float) -> _InFlight:
        """Start publishing ``entry`` (its PUBLISH goes out at the task's first step)."""
        resend = entry.resend or entry.id in self._attempted
        self._attempted.add(entry.id)
        payload = mark_replayed(entry.payload) if resend else entry.payload
        publish = self.link.publish(
            entry.topic, payload, qos=entry.qos, retain=entry.retain, timeout_s=None
        )
        return _InFlight(entry, asyncio.create_task(publish), now)

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
