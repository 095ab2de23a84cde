"""The latency floor: the least a program can do to bring hub events to MQTT.

It opens each pty's raw file descriptor itself (no serial library, so no select() and no cap
at 1,024 descriptors), watches them with the event loop, decodes LSP frames, ACKs every
event as the spec asks, and publishes each WAN_STATE_CHANGED at QoS 1 with aiomqtt: no
outbox, no disk, no envelope, no validation. Whatever gatewayd costs above this is the
price of what it promises (nothing lost across restarts, one result per job).

Run: python -m bench.forwarder --host 127.0.0.1 --port PORT --kit KIT PORTS_JSON
It prints ``ready`` once connected with every port open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import struct
import sys
import tty
from pathlib import Path

import aiomqtt

from bench.hub_load import raise_fd_limit
from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame
from gatewayd_drivers.commshub.messages import EventCode

_WAN = struct.Struct(">BBbIIH")


class Port:
    def __init__(self, name: str, path: str, publish: asyncio.Queue[tuple[str, bytes]]) -> None:
        self.name = name
        self.topic = ""
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self._publish = publish
        self._decoder = FrameDecoder(self._on_frame)

    def on_readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            asyncio.get_running_loop().remove_reader(self.fd)
            return
        self._decoder.feed(data)

    def _on_frame(self, frame: Frame) -> None:
        if frame.ftype != FrameType.EVENT:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, encode_frame(Frame(FrameType.ACK, frame.seq, frame.cmd)))
        if frame.cmd != EventCode.WAN_STATE_CHANGED or len(frame.payload) < _WAN.size:
            return
        _state, _reg, rssi, seconds, last, _attempts = _WAN.unpack_from(frame.payload)
        body = {
            "hub": self.name,
            "event": {"rssi_dbm": rssi, "seconds_in_state": seconds, "last_dcc_contact_s": last},
        }
        self._publish.put_nowait((self.topic, json.dumps(body).encode()))


async def forward(host: str, port: int, kit: str, paths: list[str]) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    async with aiomqtt.Client(host, port, identifier=f"floor-{kit}") as client:
        ports = []
        for i, path in enumerate(paths):
            p = Port(f"hub{i}", path, queue)
            p.topic = f"floor/{kit}/hubs/{p.name}/events"
            loop.add_reader(p.fd, p.on_readable)
            ports.append(p)
        print("ready", flush=True)
        pending: set[asyncio.Task[None]] = set()
        while True:
            topic, payload = await queue.get()
            # Not awaited one by one: paho keeps its own in-flight window, as any
            # forwarder that wants throughput would let it.
            task = asyncio.create_task(client.publish(topic, payload, qos=1))
            pending.add(task)
            task.add_done_callback(pending.discard)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kit", required=True)
    parser.add_argument("ports", type=Path, help="a JSON list of the ptys' paths")
    args = parser.parse_args(argv)
    paths = json.loads(args.ports.read_text())
    try:
        asyncio.run(forward(args.host, args.port, args.kit, paths))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
