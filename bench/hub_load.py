"""The hubs' side of the latency benchmark: N ptys, each a hub sending one event a second.

Not the hub simulator: it plays no scenario and keeps no state, so that a thousand hubs
cost one small process. Every hub sends WAN_STATE_CHANGED once a second, the hubs spread
evenly over the second. Each event carries its own identity and send time in fields the
kit publishes unchanged: SECONDS_IN_STATE is the hub's event number (1, 2, ...) and
LAST_DCC_CONTACT_S the send time in microseconds of CLOCK_MONOTONIC modulo 2**32 - 1, so
whoever receives the MQTT message can compute the latency with no table to match.
PING is answered; any other request gets UNKNOWN_COMMAND; ACKs are read and dropped.

Protocol with the bench, one JSON line each way:
- it prints ``{"ports": [...]}`` once every pty is open;
- it waits for ``{"go": SECONDS}`` on stdin, sends for that long, then prints
  ``{"sent": {PORT_INDEX: COUNT, ...}}``, and exits at the next line or end of stdin.

Run: python -m bench.hub_load --hubs N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import tty

from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame
from gatewayd_drivers.commshub.messages import EventCode, RegState, WanState, WanStatus

STAMP_MODULO = 2**32 - 1  # 0xFFFFFFFF means "never" on the wire
_PING = 0x0001
_OK = 0x00
_UNKNOWN_COMMAND = 0x01


def stamp_us() -> int:
    """Now, as carried in LAST_DCC_CONTACT_S."""
    return (time.monotonic_ns() // 1000) % STAMP_MODULO


def latency_us(sent_stamp: int, received_stamp: int) -> int:
    return (received_stamp - sent_stamp) % STAMP_MODULO


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class FakeHub:
    """One pty: its master end is the hub's side of the service cable."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.master, self._slave = os.openpty()
        # The slave stays open here too: a pty whose slave nobody holds reads EIO.
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.sent = 0
        self._seq = 0
        self._decoder = FrameDecoder(self._on_frame)

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return  # the kit closed its end; nothing to answer
        self._decoder.feed(data)

    def _on_frame(self, frame: Frame) -> None:
        if frame.ftype != FrameType.REQUEST:
            return  # ACKs need no answer; this hub never resends
        status = _OK if frame.cmd == _PING else _UNKNOWN_COMMAND
        self._write(Frame(FrameType.RESPONSE, frame.seq, frame.cmd, bytes((status,))))

    def send_event(self) -> None:
        self.sent += 1
        self._seq = self._seq % 255 + 1  # 0 is HUB_STARTED's alone
        status = WanStatus(
            state=WanState.CONNECTED,
            reg_state=RegState.REGISTERED_HOME,
            rssi_dbm=-70,
            seconds_in_state=self.sent,
            last_dcc_contact_s=stamp_us(),
            attach_attempts=1,
        )
        self._write(Frame(FrameType.EVENT, self._seq, EventCode.WAN_STATE_CHANGED, status.encode()))

    def _write(self, frame: Frame) -> None:
        try:
            os.write(self.master, encode_frame(frame))
        except BlockingIOError:
            pass  # the kit is not reading: a hub's UART would drop it too
        except OSError:
            pass


async def send_for(hubs: list[FakeHub], seconds: float) -> None:
    """One event per hub per second, hub i at i/N of each second."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    n = len(hubs)
    slot = 0
    while True:
        due = start + slot / n
        if due >= end:
            return
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        hubs[slot % n].send_event()
        slot += 1


async def main_async(count: int) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    hubs = [FakeHub(i) for i in range(count)]
    for hub in hubs:
        loop.add_reader(hub.master, hub.on_readable)
    print(json.dumps({"ports": [h.path for h in hubs]}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if not line:
        return
    seconds = float(json.loads(line)["go"])
    await send_for(hubs, seconds)
    print(json.dumps({"sent": {h.index: h.sent for h in hubs}}), flush=True)
    # The ptys stay until the bench has its figures: closing them would make the kit
    # publish its hubs' links lost while the bench still counts.
    await loop.run_in_executor(None, sys.stdin.readline)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.hubs))


if __name__ == "__main__":
    main()
