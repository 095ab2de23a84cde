"""The device side of the LSP exchanges (spec sections 2, 3 and 7).

Requests: exactly one RESPONSE each, a 3 s replay cache, copies of a request
still executing ignored, BUSY past 4 executing. Events: numbered from the hub's
counter, resent every 500 ms until ACKed, at most 3 times. Every timer here is
real time. What a command does is left to the ``execute`` callback.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gatewayd_drivers.commshub.framing import (
    DiscardReason,
    Frame,
    FrameDecoder,
    FrameType,
    encode_frame,
)
from gatewayd_drivers.commshub.messages import Cmd, EventCode, Status, as_enum, enum_name
from gatewayd_sim.commshub.clock import Scheduler
from gatewayd_sim.commshub.faults import Faults

_log = logging.getLogger(__name__)

REPLAY_S = 3.0  # outlasts the host's last resend, 2 s after its first send
EVENT_RESEND_S = 0.5
EVENT_MAX_RESENDS = 3
MAX_EXECUTING = 4

Key = tuple[int, int]  # (SEQ, CMD)


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    at: float  # loop time
    frame: Frame


@dataclass(frozen=True, slots=True)
class SentResponse:
    at: float
    frame: Frame
    replay: bool  # a stored answer sent again for a resent request
    transmitted: bool  # False when a fault dropped it or the cable was out


@dataclass(slots=True)
class SentEvent:
    seq: int
    cmd: int
    payload: bytes
    sends: list[float] = field(default_factory=list)  # loop times of every copy written
    delivered: list[bool] = field(default_factory=list)  # whether each copy reached the pty
    acked_at: float | None = None
    dropped: bool = False  # resends ran out without an ACK

    @property
    def resends(self) -> int:
        return max(0, len(self.sends) - 1)


def cmd_name(cmd: int) -> str:
    """A command's or event's name, or its number when the spec does not list it."""
    for kind in (Cmd, EventCode):
        value = as_enum(kind, cmd)
        if isinstance(value, enum.IntEnum):
            return value.name
    return f"0x{cmd:04X}"


def status_payload(status: Status, data: bytes = b"") -> bytes:
    """A RESPONSE payload: the status byte, then data only when OK (spec section 3)."""
    return bytes([status]) + (data if status is Status.OK else b"")


class LspDevice:
    """The hub's end of the link; ``feed`` takes bytes from the port."""

    def __init__(
        self,
        scheduler: Scheduler,
        transmit: Callable[[bytes], bool],
        execute: Callable[[Frame], bytes],
        faults: Faults,
        note: Callable[[str], None],
    ) -> None:
        self._scheduler = scheduler
        self._transmit = transmit
        self._execute = execute
        self._faults = faults
        self._note = note
        self._decoder = FrameDecoder(self._on_frame, self._on_discard)
        self._replay: dict[Key, tuple[float, Frame]] = {}
        self._executing: dict[Key, asyncio.TimerHandle] = {}
        self._pending: dict[Key, tuple[SentEvent, asyncio.TimerHandle]] = {}
        self._next_seq = 1
        self.frames_received: list[ReceivedFrame] = []
        self.acks_received: list[ReceivedFrame] = []
        self.responses_sent: list[SentResponse] = []
        self.events_sent: list[SentEvent] = []
        self.executed: Counter[int] = Counter()
        self.discarded: Counter[DiscardReason] = Counter()

    @property
    def decoder(self) -> FrameDecoder:
        return self._decoder

    def feed(self, data: bytes) -> None:
        self._decoder.feed(data)

    def link_lost(self) -> None:
        """The cable is out: forget a half-received frame."""
        self._decoder.reset()

    def power_on(self) -> None:
        """A restart wipes the hub's RAM: pending work is lost, events count from 0."""
        for handle in self._executing.values():
            self._scheduler.cancel(handle)
        self._executing.clear()
        for _event, handle in self._pending.values():
            self._scheduler.cancel(handle)
        self._pending.clear()
        self._replay.clear()
        self._decoder.reset()
        self._next_seq = 0

    def stop(self) -> None:
        self.power_on()

    # --- receiving ------------------------------------------------------------

    def _on_discard(self, reason: DiscardReason, size: int) -> None:
        self.discarded[reason] += 1

    def _on_frame(self, frame: Frame) -> None:
        now = self._scheduler.time()
        self.frames_received.append(ReceivedFrame(now, frame))
        if frame.ftype == FrameType.REQUEST:
            self._on_request(frame, now)
        elif frame.ftype == FrameType.ACK:
            self.acks_received.append(ReceivedFrame(now, frame))
            self._on_ack(frame, now)
        # RESPONSE, EVENT and unknown TYPEs are not for the hub: ignored.

    def _on_request(self, frame: Frame, now: float) -> None:
        key = (frame.seq, frame.cmd)
        name = cmd_name(frame.cmd)
        if key in self._executing:
            self._note(f"request {name} seq {frame.seq}: copy of one still executing, ignored")
            return
        self._expire_replays(now)
        stored = self._replay.get(key)
        if stored is not None:
            self._note(f"request {name} seq {frame.seq}: resent, replaying the stored answer")
            self._send_response(stored[1], replay=True, now=now)
            return
        self._note(f"request {name} seq {frame.seq} ({len(frame.payload)} payload bytes)")
        if len(self._executing) >= MAX_EXECUTING or self._faults.take_busy(frame.cmd):
            self._answer(frame, status_payload(Status.BUSY))
            return
        delay = self._faults.delay_s(frame.cmd)
        if delay <= 0:
            self._run(frame)
        else:
            self._executing[key] = self._scheduler.call_later(delay, lambda: self._run(frame))

    def _run(self, frame: Frame) -> None:
        self._executing.pop((frame.seq, frame.cmd), None)
        self.executed[frame.cmd] += 1
        try:
            payload = self._execute(frame)
        except Exception:
            # The host still gets exactly one answer, even from a broken handler.
            _log.exception("executing %s failed", cmd_name(frame.cmd))
            payload = status_payload(Status.BAD_PARAMETER)
        self._answer(frame, payload)

    def _answer(self, request: Frame, payload: bytes) -> None:
        now = self._scheduler.time()
        response = Frame(FrameType.RESPONSE, request.seq, request.cmd, payload)
        self._replay[(request.seq, request.cmd)] = (now, response)
        status = enum_name(as_enum(Status, payload[0])) if payload else "?"
        if self._faults.take_drop(request.cmd):
            self._note(f"response {cmd_name(request.cmd)} seq {request.seq} {status}: DROPPED")
            self.responses_sent.append(SentResponse(now, response, False, False))
            return
        self._note(f"response {cmd_name(request.cmd)} seq {request.seq} {status}")
        self._send_response(response, replay=False, now=now)

    def _send_response(self, response: Frame, *, replay: bool, now: float) -> None:
        ok = self._write(response)
        self.responses_sent.append(SentResponse(now, response, replay, ok))

    def _expire_replays(self, now: float) -> None:
        old = [k for k, (at, _) in self._replay.items() if now - at > REPLAY_S]
        for key in old:
            del self._replay[key]

    def _on_ack(self, frame: Frame, now: float) -> None:
        key = (frame.seq, frame.cmd)
        pending = self._pending.get(key)
        if pending is None:
            self._note(f"ACK {cmd_name(frame.cmd)} seq {frame.seq}: no such event pending")
            return
        event, handle = pending
        if event.acked_at is None:
            event.acked_at = now
        self._note(f"ACK {cmd_name(frame.cmd)} seq {frame.seq}")
        if self._faults.ignore_acks:
            return
        self._scheduler.cancel(handle)
        del self._pending[key]

    # --- events ---------------------------------------------------------------

    def send_event(self, cmd: int, payload: bytes) -> SentEvent:
        """Push an EVENT with the next SEQ; resends run until it is ACKed."""
        seq = self._next_seq
        self._next_seq = (seq + 1) % 256
        event = SentEvent(seq, cmd, payload)
        self.events_sent.append(event)
        key = (seq, cmd)
        old = self._pending.pop(key, None)
        if old is not None:
            # 256 events inside one resend period: the older one is given up.
            self._scheduler.cancel(old[1])
            old[0].dropped = True
        self._note(f"event {cmd_name(cmd)} seq {seq}")
        self._send_copy(event)
        self._arm_resend(key, event)
        return event

    def _arm_resend(self, key: Key, event: SentEvent) -> None:
        handle = self._scheduler.call_later(EVENT_RESEND_S, lambda: self._resend(key))
        self._pending[key] = (event, handle)

    def _resend(self, key: Key) -> None:
        pending = self._pending.get(key)
        if pending is None:
            return
        event = pending[0]
        if event.resends >= EVENT_MAX_RESENDS:
            del self._pending[key]
            if event.acked_at is None:
                event.dropped = True
                self._note(f"event {cmd_name(event.cmd)} seq {event.seq}: no ACK, dropped")
            return
        self._note(f"event {cmd_name(event.cmd)} seq {event.seq}: resend {event.resends + 1}")
        self._send_copy(event)
        self._arm_resend(key, event)

    def _send_copy(self, event: SentEvent) -> None:
        frame = Frame(FrameType.EVENT, event.seq, event.cmd, event.payload)
        ok = self._write(frame)
        if self._faults.duplicate_events:
            # A firmware that writes each event twice: still one "send" for the resend count.
            ok = self._write(frame) or ok
        event.sends.append(self._scheduler.time())
        event.delivered.append(ok)

    def _write(self, frame: Frame) -> bool:
        return self._transmit(self._faults.corrupt(encode_frame(frame)))
