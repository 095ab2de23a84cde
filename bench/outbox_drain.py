"""Benchmark: how fast the durable outbox drains into a real broker, beside paho-mqtt.

Not a test. Run from the repository root::

    PYTHONPATH=.:drivers:hw-fixtures .venv/bin/python bench/outbox_drain.py [--messages N]
        [--repeats R]

Each repetition starts from ``N`` hub events (about 345 bytes each, on 16 topics) queued in a
fresh outbox, as after a broker outage, and times three publishers of the same messages against
one mosquitto on a free loopback port, in an order that rotates from one repetition to the next:

- gatewayd: the daemon's own ``Publisher`` and ``MqttLink`` (aiomqtt), from waking the pump
  until every message is acknowledged by the broker and removed from the outbox;
- paho: a bare paho client, QoS 1, 20 messages in flight (paho's default window), its network
  loop in a thread of its own, from the first publish until the last PUBACK: the peer;
- aiomqtt: bare aiomqtt on one asyncio loop, QoS 1, 20 in flight, nothing stored: the floor
  of any publisher built on aiomqtt, to tell the outbox's own cost from the library's.

It prints the rates per repetition, and the ratios gatewayd / paho (the target) and
gatewayd / aiomqtt as min/median/max over the repetitions. ``run(messages, repeats)`` returns
the same figures as a dict, for a harness. Self-contained on purpose (its own broker start),
so it can be lifted into any harness.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.contract import HubEventMessage, StampFields, WanStateEvent, to_payload
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import NewMessage, Outbox
from gatewayd.daemon.publisher import Publisher

LOOPBACK = "127.0.0.1"
TOPICS = 16
PAHO_IN_FLIGHT = 20
AIOMQTT_IN_FLIGHT = 20
# Generous: a drain that takes longer than this is broken, not slow.
DRAIN_TIMEOUT_S = 300.0
POLL_S = 0.001

Message = tuple[str, bytes]


# --- the broker ------------------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A mosquitto listening on a free loopback port, for as long as the block runs."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        sys.exit("mosquitto is not installed")
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = int(s.getsockname()[1])
    conf = workdir / "mosquitto.conf"
    lines = ["persistence false", "allow_anonymous true", f"listener {port} {LOOPBACK}"]
    if os.geteuid() == 0:
        # Started as root, mosquitto drops to its own user; it needs no files here, but say so.
        lines.insert(0, "user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                sys.exit(f"mosquitto exited at start: {err}")
            try:
                socket.create_connection((LOOPBACK, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("mosquitto did not start listening")
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()


# --- the messages ----------------------------------------------------------------------------


def make_messages(count: int) -> list[Message]:
    """``count`` hub events as the daemon publishes them after an outage (replayed)."""
    out: list[Message] = []
    now = datetime.now(UTC)
    for i in range(count):
        hub = f"h{i % TOPICS:02d}"
        stamp = StampFields(session=7, seq=i // TOPICS + 1, ts=now, replayed=True)
        body = WanStateEvent(
            state="registered",
            reg_state="registered_home",
            rssi_dbm=-70 - i % 20,
            seconds_in_state=i % 600,
            last_dcc_contact_s=None,
            attach_attempts=1 + i % 3,
        )
        message = HubEventMessage(**stamp.fields(), hub=hub, job_id=None, event=body)
        out.append((f"gatewayd/bench/hubs/{hub}/events", to_payload(message)))
    return out


# --- gatewayd --------------------------------------------------------------------------------


async def _drain_gatewayd(port: int, state_dir: Path, messages: Sequence[Message]) -> float:
    clock = SystemClock()
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=clock)
    try:
        for start in range(0, len(messages), 500):
            outbox.append_all(
                [NewMessage(topic, payload) for topic, payload in messages[start : start + 500]]
            )
        config = MqttConfig(kit_id="bench", host=LOOPBACK, port=port, state_dir=state_dir)
        link = MqttLink(config, state_topic="gatewayd/bench/state")
        publisher = Publisher(outbox, link, clock)
        link.start()
        try:
            if not await link.wait_connected(10):
                sys.exit(f"gatewayd did not connect: {link.last_error}")
            publisher.start()
            started = time.perf_counter()
            publisher.wake()
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                # The publisher has no "empty" event; a 1 ms poll is far below a drain's time.
                while publisher.waiting():  # noqa: ASYNC110
                    await asyncio.sleep(POLL_S)
            elapsed = time.perf_counter() - started
            if publisher.published != len(messages):
                sys.exit(f"gatewayd published {publisher.published} of {len(messages)}")
            await publisher.stop()
        finally:
            await link.stop()
    finally:
        outbox.close()
    return len(messages) / elapsed


def drain_gatewayd(port: int, messages: Sequence[Message]) -> float:
    """Messages per second, for the daemon's publisher draining its outbox."""
    with tempfile.TemporaryDirectory(prefix="outbox-drain-") as tmp:
        return asyncio.run(_drain_gatewayd(port, Path(tmp), messages))


# --- paho-mqtt -------------------------------------------------------------------------------


def drain_paho(port: int, messages: Sequence[Message]) -> float:
    """Messages per second, for a bare paho client with ``PAHO_IN_FLIGHT`` in flight."""
    done = threading.Event()
    connected = threading.Event()
    acked = 0

    def on_connect(*_args: object) -> None:
        connected.set()

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(PAHO_IN_FLIGHT)
    client.max_queued_messages_set(0)  # unbounded: paho queues what the window holds back
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(LOOPBACK, port)
    client.loop_start()
    try:
        if not connected.wait(10):
            sys.exit("paho did not connect")
        started = time.perf_counter()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if not done.wait(DRAIN_TIMEOUT_S):
            sys.exit(f"paho got {acked} of {len(messages)} PUBACKs")
        elapsed = time.perf_counter() - started
    finally:
        client.disconnect()
        client.loop_stop()
    return len(messages) / elapsed


# --- bare aiomqtt ---------------------------------------------------------------------------


async def _drain_aiomqtt(port: int, messages: Sequence[Message]) -> float:
    async with aiomqtt.Client(
        LOOPBACK,
        port,
        identifier="bench-aiomqtt",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=AIOMQTT_IN_FLIGHT,
    ) as client:
        client.pending_calls_threshold = AIOMQTT_IN_FLIGHT + 10
        window: deque[asyncio.Task[None]] = deque()
        started = time.perf_counter()
        for topic, payload in messages:
            if len(window) == AIOMQTT_IN_FLIGHT:
                await window.popleft()
            publish = client.publish(topic, payload, qos=1, timeout=math.inf)
            window.append(asyncio.create_task(publish))
        for task in window:
            await task
        elapsed = time.perf_counter() - started
    return len(messages) / elapsed


def drain_aiomqtt(port: int, messages: Sequence[Message]) -> float:
    """Messages per second, for bare aiomqtt with ``AIOMQTT_IN_FLIGHT`` in flight."""
    return asyncio.run(_drain_aiomqtt(port, messages))


# --- the comparison --------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(messages: int, repeats: int) -> dict[str, Any]:
    """The three drains ``repeats`` times, in rotating order; rates and ratios."""
    batch = make_messages(messages)
    drains = {"gatewayd": drain_gatewayd, "paho": drain_paho, "aiomqtt": drain_aiomqtt}
    rates: dict[str, list[float]] = {name: [] for name in drains}
    names = list(drains)
    with (
        tempfile.TemporaryDirectory(prefix="outbox-drain-broker-") as tmp,
        mosquitto(Path(tmp)) as port,
    ):
        for i in range(repeats):
            for name in names[i % 3 :] + names[: i % 3]:
                rates[name].append(drains[name](port, batch))
    to_paho = [g / p for g, p in zip(rates["gatewayd"], rates["paho"], strict=True)]
    to_floor = [g / a for g, a in zip(rates["gatewayd"], rates["aiomqtt"], strict=True)]
    return {
        "messages": messages,
        "repeats": repeats,
        "payload_bytes": round(statistics.mean(len(p) for _, p in batch)),
        **{f"{name}_msg_s": values for name, values in rates.items()},
        **{name: _spread(values) for name, values in rates.items()},
        "ratio": _spread(to_paho),
        "ratio_to_aiomqtt": _spread(to_floor),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    figures = run(args.messages, args.repeats)
    print(f"python   {platform.python_implementation()} {platform.python_version()}")
    print(f"machine  {platform.machine()} {platform.system()}, {os.cpu_count()} cpu")
    print(
        f"input    {figures['messages']} messages of ~{figures['payload_bytes']} B on {TOPICS} "
        f"topics, {figures['repeats']} repetitions, paho window {PAHO_IN_FLIGHT}"
    )
    rows = zip(
        figures["gatewayd_msg_s"], figures["paho_msg_s"], figures["aiomqtt_msg_s"], strict=True
    )
    for n, (g, p, a) in enumerate(rows, 1):
        print(
            f"run {n}    gatewayd {g:8,.0f} msg/s   paho {p:8,.0f} msg/s   aiomqtt {a:8,.0f} "
            f"msg/s   gatewayd/paho {g / p:.2f}"
        )
    for name in ("gatewayd", "paho", "aiomqtt", "ratio", "ratio_to_aiomqtt"):
        s = figures[name]
        fmt = "{:,.0f}" if name in ("gatewayd", "paho", "aiomqtt") else "{:.2f}"
        label = {"ratio": "gatewayd/paho", "ratio_to_aiomqtt": "gatewayd/aiomqtt"}.get(name, name)
        print(
            f"{label:16} min/median/max "
            + "/".join(fmt.format(s[k]) for k in ("min", "median", "max"))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
