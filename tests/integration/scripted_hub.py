"""A hub whose every answer the test scripts, on a real pty: for exact protocol checks.

The scenario-driven simulator (gatewayd_sim) models a site; this one lets a test see
each frame the client sends, with its time, and decide byte for byte what the
hub does next (answer, stay silent, answer BUSY, send an event twice...).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame
from gatewayd_sim.pty import PtyPort


@dataclass(frozen=True)
class Seen:
    at: float
    frame: Frame


class ScriptedHub:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.received: asyncio.Queue[Seen] = asyncio.Queue()
        self._decoder = FrameDecoder(self._on_frame)
        self._port = PtyPort(link, self._decoder.feed)

    def open(self) -> None:
        self._port.open()

    def unplug(self) -> None:
        self._port.unplug()

    close = unplug

    def _on_frame(self, frame: Frame) -> None:
        self.received.put_nowait(Seen(asyncio.get_running_loop().time(), frame))

    def write(self, data: bytes) -> None:
        assert self._port.write(data), "the scripted hub's pty did not take the bytes"

    def send(self, frame: Frame) -> None:
        self.write(encode_frame(frame))

    def respond(self, request: Frame, payload: bytes = b"\x00") -> None:
        self.send(Frame(FrameType.RESPONSE, request.seq, request.cmd, payload))

    async def next_frame(self, timeout: float = 5.0) -> Seen:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def next_request(self, timeout: float = 5.0) -> Seen:
        while True:
            seen = await self.next_frame(timeout)
            if seen.frame.ftype == FrameType.REQUEST:
                return seen

    async def next_ack(self, timeout: float = 5.0) -> Seen:
        while True:
            seen = await self.next_frame(timeout)
            if seen.frame.ftype == FrameType.ACK:
                return seen
