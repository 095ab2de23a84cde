"""The meter side of IEC 62056-21 mode C over a pty, as a meter file describes it.

The simulator listens at 300 baud for a sign-on, answers with its identification, takes the
acknowledgement's option select, then sends its data readout at the agreed speed. A pty has
no baud rate, so the simulator reads the speed the client set (``termios.tcgetattr``) and
treats a mismatch as a real line would: a sign-on sent at the wrong speed is not heard, and a
readout received at the wrong speed arrives as framing noise. Every exchange is logged in
``events`` so tests can see what the client did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import termios
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd_drivers.iec62056.protocol import ACK, MODE_C_BAUD
from gatewayd_drivers.iec62056.readout import build_data_message
from gatewayd_sim.optical.profile import MeterProfile
from gatewayd_sim.pty import PtyPort

_log = logging.getLogger(__name__)

_MAX_INPUT = 1024
# A battery meter stays awake this long after its wake-up without traffic.
_AWAKE_S = 10.0
_CHUNK = 16


@dataclass(frozen=True, slots=True)
class SimEvent:
    kind: str  # sign_on, ignored, identification, ack, readout, noise
    detail: str
    client_baud: int | None


def _speed_of(attrs: list[Any] | None) -> int | None:
    if attrs is None:
        return None
    speed = attrs[5]
    for rate in (300, 600, 1200, 2400, 4800, 9600, 19200, 38400):
        if getattr(termios, f"B{rate}") == speed:
            return rate
    return None


class OpticalMeterSim:
    """One meter at the probe; clients reach it through ``link``."""

    def __init__(self, profile: MeterProfile, link: Path) -> None:
        self.profile = profile
        self.port = PtyPort(link, self._on_data)
        self.events: list[SimEvent] = []
        self._input = bytearray()
        self._identified = False
        self._nuls = 0
        self._awake_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def link(self) -> Path:
        return self.port.link

    async def start(self) -> None:
        self.port.open()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.port.close()

    def client_baud(self) -> int | None:
        """The speed the client has set on its end of the line."""
        return _speed_of(self.port.line_attrs())

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    # --- receiving ----------------------------------------------------------------

    def _note(self, kind: str, detail: str = "") -> None:
        self.events.append(SimEvent(kind, detail, self.client_baud()))

    def _on_data(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self.profile.faults.echo:
            self.port.write(data)
        for byte in data:
            if byte == 0x00 and not self._input:
                self._nuls += 1
                if self._nuls >= self.profile.wake_up_nuls:
                    self._awake_until = loop.time() + _AWAKE_S
                continue
            self._nuls = 0
            self._input.append(byte & 0x7F)
        if len(self._input) > _MAX_INPUT:
            self._input.clear()
        self._parse(loop.time())

    def _parse(self, now: float) -> None:
        while True:
            buf = self._input
            start = buf.find(b"/?")
            ack_at = buf.find(bytes([ACK]))
            if ack_at >= 0 and (start < 0 or ack_at < start):
                end = buf.find(b"\r\n", ack_at)
                if end < 0:
                    return
                message = bytes(buf[ack_at : end + 2])
                del buf[: end + 2]
                self._on_ack(message)
                continue
            if start >= 0:
                end = buf.find(b"!\r\n", start)
                if end < 0:
                    return
                del buf[: end + 3]
                self._on_sign_on(now)
                continue
            return

    def _on_sign_on(self, now: float) -> None:
        self._identified = False
        baud = self.client_baud()
        if baud != 300:
            self._note("ignored", f"sign-on sent at {baud} baud")
            return
        if self.profile.battery and now > self._awake_until:
            self._note("ignored", "asleep: no wake-up before the sign-on")
            return
        self._awake_until = now + _AWAKE_S
        self._note("sign_on")
        if self.profile.faults.no_answer:
            return
        self._identified = True
        line = self.profile.identification.encode("ascii")
        if self.profile.faults.garbled_identification:
            # Bit errors on the manufacturer letters and the baud character.
            line = line[:1] + bytes(b ^ 0x21 for b in line[1:5]) + line[5:]
        self._later(self._send(line + b"\r\n", 300, "identification"))

    def _on_ack(self, message: bytes) -> None:
        if not self._identified:
            self._note("ignored", f"acknowledgement before identification: {message!r}")
            return
        self._identified = False
        text = message[1:-2].decode("ascii", "replace")
        if len(text) != 3 or text[0] != "0" or text[2] != "0":
            self._note("ignored", f"unsupported option select {message!r}")
            return
        asked = text[1]
        if asked not in MODE_C_BAUD or asked > self.profile.baud_char:
            self._note("ignored", f"baud character {asked!r} beyond {self.profile.baud_char!r}")
            return
        self._note("ack", asked)
        rate = 300 if self.profile.faults.ignores_baud_switch else MODE_C_BAUD[asked]
        message_out = build_data_message(self.profile.data_block())
        if self.profile.faults.wrong_bcc:
            message_out = message_out[:-1] + bytes([message_out[-1] ^ 0x5A])
        # The reaction time counts from the acknowledgement's last character, which at 300
        # baud arrives 10 bits per character after its first; a pty hands it over at once,
        # while the kit switches speed only once it has left the wire.
        wire_s = len(message) * 10 / 300
        self._later(self._send(message_out, rate, "readout", after_s=wire_s))

    # --- sending ------------------------------------------------------------------

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, data: bytes, rate: int, kind: str, *, after_s: float = 0.0) -> None:
        await asyncio.sleep(after_s + self.profile.reaction_s + self.profile.faults.slow_answer_s)
        client = self.client_baud()
        if client != rate:
            # Received at another speed, a character smears into framing errors: noise.
            self._note("noise", f"sent {kind} at {rate} baud, client at {client}")
            self.port.write(bytes([0x00, 0x7F, 0x3F]) * max(1, len(data) // 8))
            return
        self._note(kind, f"{rate} baud")
        for i in range(0, len(data), _CHUNK):
            self.port.write(data[i : i + _CHUNK])
            await asyncio.sleep(0.001)
