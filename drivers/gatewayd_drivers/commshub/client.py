"""The host side of the LSP: typed hub calls and a stream of hub events (spec section 3).

Frames -> hub state and events. A ``FramedClient`` (the port and its
reopening) with the LSP's ``FrameDecoder`` on it. It allocates SEQs, keeps at
most four requests outstanding, resends unanswered requests with the same SEQ,
retries BUSY with a new SEQ, ACKs every event at once and hands each event to
subscribers exactly once despite the hub's resends. Every call ends with a
result or a typed error: ``HubTimeout``, ``HubStatusError`` or
``HubDisconnected``. A hub that stops answering (the ``silence`` rule: 10 s
without a valid frame while a request waits, or three timeouts in a row) is
announced once to subscribers as ``HubSilent``, and ``silence()`` says so
until the hub speaks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.errors import HubDisconnected, HubStatusError, HubTimeout
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame
from gatewayd_drivers.commshub.messages import (
    Cmd,
    DeviceLog,
    DeviceLogAdd,
    DeviceLogRemove,
    DeviceType,
    EventCode,
    HanStatus,
    HubEvent,
    HubInfo,
    PayloadError,
    Status,
    WanStatus,
    decode_event,
)
from gatewayd_drivers.commshub.silence import Silence, SilenceWatch
from gatewayd_drivers.framed_client import FramedClient
from gatewayd_drivers.serial_link import LinkDown, SerialSettings

_log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProtocolTimers:
    """The spec's timers (section 7). They always run in real time."""

    resend_after_s: float = 1.0  # "resends ... after 1 s and 2 s, same SEQ"
    max_resends: int = 2  # "at most twice"; failed 1 s after the last
    busy_retry_s: float = 0.1  # "retry no sooner than 100 ms later, with a new SEQ"
    max_busy: int = 5  # "after 5 BUSY answers in a row the call fails with BUSY"
    max_outstanding: int = 4  # "up to 4 requests outstanding"
    seq_reuse_s: float = 3.0  # "a SEQ is never reused within 3 s"
    # The hub resends an unACKed event every 500 ms, three times: copies stop
    # 1.5 s after the first. Remember events a little longer than that.
    event_dedupe_s: float = 3.0
    restart_resend_s: float = 2.0  # "a second HUB_STARTED ... within 2 s is a resend"


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The port is open. ``reopened``: it had been lost, so re-read the hub's state."""

    reopened: bool


@dataclass(frozen=True, slots=True)
class LinkLost:
    """The port vanished; calls fail with ``HubDisconnected`` until ``LinkUp``."""

    reason: str


@dataclass(frozen=True, slots=True)
class HubSilent:
    """The hub, its port still open, has stopped answering (see ``silence``)."""

    silence: Silence


ClientEvent = HubEvent | LinkUp | LinkLost | HubSilent


@dataclass
class HubClientStats:
    """Counters for metrics; cumulative since the client was created."""

    bytes_in: int = 0
    bytes_out: int = 0
    frames_in: int = 0
    frames_out: int = 0
    frame_errors: int = 0  # frames the decoder discarded (bad FCS, length, version...)
    malformed: int = 0  # well-framed but payload shorter than its layout
    requests: int = 0
    resends: int = 0
    timeouts: int = 0
    busy: int = 0
    events: int = 0  # events delivered (after dedupe)
    duplicate_events: int = 0
    reconnects: int = 0
    link_errors: int = 0
    connected: bool = False
    dropped_events: int = 0  # a slow subscriber's queue overflowed
    silences: int = 0  # times the hub went silent (see ``HubSilent``)
    discards: dict[str, int] = field(default_factory=dict)


class EventSubscription:
    """An async iterator of ``ClientEvent``; close it (or use ``with``) to unsubscribe."""

    def __init__(self, client: HubClient, maxsize: int) -> None:
        self._client = client
        self._queue: asyncio.Queue[ClientEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _put(self, event: ClientEvent) -> None:
        if self._queue.full():
            # Drop the oldest: events say *that* something changed and the
            # GET_* calls say what is true now, so the newest matter most.
            self._queue.get_nowait()
            self.dropped += 1
            self._client.stats.dropped_events += 1
        self._queue.put_nowait(event)

    def get_nowait(self) -> ClientEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def get(self) -> ClientEvent:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[ClientEvent]:
        return self

    async def __anext__(self) -> ClientEvent:
        return await self._queue.get()

    def close(self) -> None:
        self._client._subscribers.discard(self)

    def __enter__(self) -> EventSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Refused:
    """The hub answered with a status other than OK (so the answer has no value)."""

    status: int


@dataclass
class _Pending(Generic[T]):
    """One request in flight, whose OK answer ``decode`` turns into a ``T``."""

    cmd: int
    decode: Callable[[bytes], T]
    future: asyncio.Future[T | _Refused]
    malformed: int = 0

    def done(self) -> bool:
        return self.future.done()

    def answer(self, status: int, body: bytes) -> None:
        """Settle the request; raises ``PayloadError`` (and settles nothing) on a short body."""
        self.future.set_result(self.decode(body) if status == Status.OK else _Refused(status))

    def fail(self, exc: Exception) -> None:
        self.future.set_exception(exc)


class _InFlight(Protocol):
    """A request in flight as the receive path sees it, whatever its answer's type."""

    cmd: int
    malformed: int

    def done(self) -> bool: ...

    def answer(self, status: int, body: bytes) -> None: ...

    def fail(self, exc: Exception) -> None: ...


class HubClient(FramedClient[FrameDecoder]):
    """Talks to one Comms Hub over its Local Service Port."""

    def __init__(
        self,
        port: str,
        *,
        name: str | None = None,
        timers: ProtocolTimers | None = None,
        settings: SerialSettings | None = None,
        backoff: BackoffSettings | None = None,
        fail_fast_when_busy: bool = False,
    ) -> None:
        super().__init__(
            port,
            FrameDecoder(self._on_frame),
            name=name,
            settings=settings,
            backoff=backoff,
            fail_fast_when_busy=fail_fast_when_busy,
        )
        self.timers = timers or ProtocolTimers()
        self.stats = HubClientStats()
        self._pending: dict[int, _InFlight] = {}
        self._slots = asyncio.Semaphore(self.timers.max_outstanding)
        self._last_seq = -1
        self._seq_used_at: dict[int, float] = {}
        self._seen_events: dict[tuple[int, int, bytes], float] = {}
        self._subscribers: set[EventSubscription] = set()
        self._silence_watch = SilenceWatch()
        self._silent: Silence | None = None
        self._quiet_check: asyncio.TimerHandle | None = None

    def silence(self) -> Silence | None:
        """Why the hub counts as silent now, or None while it answers."""
        if self._silent is None:
            self._check_silence()
        return self._silent

    def events(self, maxsize: int = 1024) -> EventSubscription:
        """Subscribe to hub events and link changes from now on."""
        sub = EventSubscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    def snapshot_stats(self) -> HubClientStats:
        """Counters with the link's and decoder's figures folded in."""
        s = self.stats
        c = self._link.counters
        s.bytes_in, s.bytes_out = c.bytes_in, c.bytes_out
        s.reconnects, s.link_errors, s.connected = c.reconnects, c.errors, c.connected
        s.frames_in = self._decoder.stats.frames
        s.frame_errors = self._decoder.stats.errors
        s.discards = {r.value: n for r, n in self._decoder.stats.discarded.items()}
        return s

    # --- commands (spec section 4) -------------------------------------------------

    async def ping(self) -> None:
        await self._call(Cmd.PING, b"", _no_payload)

    async def get_info(self) -> HubInfo:
        return await self._call(Cmd.GET_INFO, b"", HubInfo.decode)

    async def get_wan_status(self) -> WanStatus:
        return await self._call(Cmd.GET_WAN_STATUS, b"", WanStatus.decode)

    async def wan_reconnect(self) -> None:
        await self._call(Cmd.WAN_RECONNECT, b"", _no_payload)

    async def get_han_status(self) -> HanStatus:
        return await self._call(Cmd.GET_HAN_STATUS, b"", HanStatus.decode)

    async def device_log_add(
        self,
        eui64: Eui64,
        device_type: DeviceType | int,
        install_code: bytes,
        join_timeout_s: int,
    ) -> None:
        payload = DeviceLogAdd(eui64, device_type, install_code, join_timeout_s).encode()
        await self._call(Cmd.DEVICE_LOG_ADD, payload, _no_payload)

    async def device_log_remove(self, eui64: Eui64) -> None:
        await self._call(Cmd.DEVICE_LOG_REMOVE, DeviceLogRemove(eui64).encode(), _no_payload)

    async def device_log_read(self) -> DeviceLog:
        return await self._call(Cmd.DEVICE_LOG_READ, b"", DeviceLog.decode)

    # --- exchanges -----------------------------------------------------------------

    async def _call(self, cmd: Cmd, payload: bytes, decode: Callable[[bytes], T]) -> T:
        busy = 0
        while True:
            async with self._slots:
                answer = await self._exchange(cmd, payload, decode)
            if not isinstance(answer, _Refused):
                return answer
            status = answer.status
            if status != Status.BUSY:
                raise HubStatusError(status, cmd)
            busy += 1
            self.stats.busy += 1
            if busy >= self.timers.max_busy:
                raise HubStatusError(status, cmd)
            await asyncio.sleep(self.timers.busy_retry_s)

    async def _next_seq(self) -> int:
        loop = asyncio.get_running_loop()
        seq = (self._last_seq + 1) % 256
        self._last_seq = seq
        while True:
            wait = self._seq_used_at.get(seq, -1e9) + self.timers.seq_reuse_s - loop.time()
            if seq not in self._pending and wait <= 0:
                break
            # Only reachable at >100 requests/s; waiting keeps the spec's promise.
            await asyncio.sleep(max(wait, 0.01))
        self._seq_used_at[seq] = loop.time()
        return seq

    async def _exchange(
        self, cmd: Cmd, payload: bytes, decode: Callable[[bytes], T]
    ) -> T | _Refused:
        if not self.connected:
            raise HubDisconnected(f"hub {self.name} is not connected ({self._why_down()})")
        seq = await self._next_seq()
        loop = asyncio.get_running_loop()
        # Registered before the write so that an instant answer is never missed.
        pending = _Pending(cmd, decode, loop.create_future())
        self._pending[seq] = pending
        wire = encode_frame(Frame(FrameType.REQUEST, seq, cmd, payload))
        self.stats.requests += 1
        started = loop.time()
        try:
            for attempt in range(self.timers.max_resends + 1):
                if attempt:
                    self.stats.resends += 1
                    _log.debug("resend cmd=%s seq=%d attempt=%d", cmd.name, seq, attempt)
                self._write(wire)
                if not attempt:
                    self._silence_watch.request_sent(loop.time())
                    self._arm_quiet_check()
                try:
                    # asyncio.timeout rather than wait_for: see SerialLink.wait_connected.
                    async with asyncio.timeout(self.timers.resend_after_s):
                        return await asyncio.shield(pending.future)
                except TimeoutError:
                    continue
            self.stats.timeouts += 1
            self._silence_watch.timed_out()
            self._check_silence()
            detail = (
                f"{pending.malformed} malformed answer(s) discarded" if pending.malformed else ""
            )
            raise HubTimeout(cmd, loop.time() - started, detail)
        finally:
            self._pending.pop(seq, None)
            if not pending.future.done():
                pending.future.cancel()
            elif not pending.future.cancelled():
                pending.future.exception()  # retrieved, so asyncio does not warn

    def _write(self, wire: bytes) -> None:
        try:
            self._link.write(wire)
        except LinkDown as exc:
            raise HubDisconnected(str(exc)) from None
        self.stats.frames_out += 1

    # --- receive path (called from data_received: must never raise) -----------------

    def _on_frame(self, frame: Frame) -> None:
        self._silence_watch.frame_received(asyncio.get_running_loop().time())
        self._silent = None
        if frame.ftype == FrameType.RESPONSE:
            self._on_response(frame)
        elif frame.ftype == FrameType.EVENT:
            self._on_event(frame)
        # REQUEST and ACK frames travel host -> hub only; ignore an echo of ours.

    def _on_response(self, frame: Frame) -> None:
        pending = self._pending.get(frame.seq)
        if pending is None or pending.cmd != frame.cmd or pending.done():
            return
        if not frame.payload:
            pending.malformed += 1
            self.stats.malformed += 1
            _log.warning("response without status cmd=%#06x seq=%d", frame.cmd, frame.seq)
            return
        try:
            pending.answer(frame.payload[0], frame.payload[1:])
            self._silence_watch.answered()
        except PayloadError as exc:
            # Spec: a short payload is a malformed frame of that type; drop it
            # and let the resend logic run its course.
            pending.malformed += 1
            self.stats.malformed += 1
            _log.warning(
                "malformed response cmd=%#06x seq=%d error=%r", frame.cmd, frame.seq, str(exc)
            )

    def _on_event(self, frame: Frame) -> None:
        # ACK first, whatever the event: the hub needs it within 500 ms.
        ack = encode_frame(Frame(FrameType.ACK, frame.seq, frame.cmd))
        try:
            self._link.write(ack)
            self.stats.frames_out += 1
        except LinkDown:
            return
        if self._is_duplicate(frame):
            self.stats.duplicate_events += 1
            return
        try:
            event = decode_event(frame.cmd, frame.payload)
        except PayloadError as exc:
            self.stats.malformed += 1
            _log.warning(
                "malformed event cmd=%#06x seq=%d error=%r", frame.cmd, frame.seq, str(exc)
            )
            return
        self.stats.events += 1
        self._publish(event)

    def _is_duplicate(self, frame: Frame) -> bool:
        now = asyncio.get_running_loop().time()
        horizon = now - self.timers.event_dedupe_s
        seen = self._seen_events
        for key in [k for k, t in seen.items() if t < horizon]:
            del seen[key]
        key = (frame.seq, frame.cmd, frame.payload)
        if frame.cmd == EventCode.HUB_STARTED and frame.seq == 0:
            first = seen.get(key)
            if first is not None and now - first <= self.timers.restart_resend_s:
                return True
            # A real restart: the hub numbers events from 1 again, so what we
            # remember of the old numbering would swallow new events.
            seen.clear()
            seen[key] = now
            return False
        if key in seen:
            return True
        seen[key] = now
        return False

    # --- silence (driver rule, see commshub/silence.py) ---------------------------------

    def _arm_quiet_check(self) -> None:
        due = self._silence_watch.quiet_deadline()
        if self._quiet_check is not None:
            self._quiet_check.cancel()
            self._quiet_check = None
        if due is not None:
            self._quiet_check = asyncio.get_running_loop().call_at(due, self._check_silence)

    def _check_silence(self) -> None:
        if self._silent is not None:
            return
        now = asyncio.get_running_loop().time()
        silence = self._silence_watch.check(now, outstanding=bool(self._pending))
        if silence is None:
            return
        self._silent = silence
        self.stats.silences += 1
        _log.warning("hub silent hub=%s reason=%r", self.name, silence.reason)
        self._publish(HubSilent(silence))

    def _publish(self, event: ClientEvent) -> None:
        for sub in list(self._subscribers):
            sub._put(event)

    # --- the port (FramedClient hooks) ----------------------------------------------

    def _link_up(self, reopened: bool) -> None:
        # A new port: silence is judged afresh (a pulled cable is a lost link, not silence).
        self._silence_watch = SilenceWatch()
        self._silent = None
        self._publish(LinkUp(reopened=reopened))

    def _link_down(self, reason: str) -> None:
        self._publish(LinkLost(reason))

    def _fail_waiting(self, reason: str) -> None:
        for seq, pending in list(self._pending.items()):
            if not pending.done():
                pending.fail(
                    HubDisconnected(f"hub {self.name} disconnected during request: {reason}")
                )
            self._pending.pop(seq, None)


def _no_payload(body: bytes) -> None:
    return None
