"""A hub whose every answer the test scripts, on a real pty: for exact protocol checks.

The scenario-driven simulator (hwsim) models a site; this one lets a test see
each frame the client sends, with its time, and decide byte for byte what the
hub does next (answer, stay silent, answer BUSY, send an event twice...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from dataclasses import dataclass
from pathlib import Path

from drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame


@dataclass(frozen=True)
class Seen:
    at: float
    frame: Frame


class ScriptedHub:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.received: asyncio.Queue[Seen] = asyncio.Queue()
        self._master = -1
        self._slave = -1
        self._decoder = FrameDecoder(self._on_frame)

    def open(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tmp = self.link.with_name(self.link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self._slave))
        os.replace(tmp, self.link)
        asyncio.get_running_loop().add_reader(self._master, self._readable)

    def unplug(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()

    close = unplug

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except OSError:
            asyncio.get_running_loop().remove_reader(self._master)
            return
        self._decoder.feed(data)

    def _on_frame(self, frame: Frame) -> None:
        self.received.put_nowait(Seen(asyncio.get_running_loop().time(), frame))

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

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
