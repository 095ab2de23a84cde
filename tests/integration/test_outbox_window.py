"""The outbox's in-flight window against a real mosquitto: a back office subscribed to every
topic receives each topic's messages in order with a full window of publishes awaiting their
PUBACK, and a connection lost mid-window loses nothing and reorders nothing: what goes again
is marked replayed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import NewMessage, Outbox
from gatewayd.daemon.publisher import Publisher
from tests.mqtt_broker import LOOPBACK, Broker
from tests.waiting import wait_until

KIT = "kit-w"
TOPICS = [f"gatewayd/{KIT}/hubs/h{i}/events" for i in range(8)]
MESSAGES = 3000
WINDOW = 20


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    # The back office shares the test's event loop with the kit and may fall behind: the
    # broker must queue for it rather than drop past its default 1,000.
    b.config.write_text(b.config.read_text() + "max_queued_messages 0\n")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class BackOffice:
    """A subscriber to every topic of the kit, keeping what arrives in arrival order."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, broker: Broker) -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier="backoffice") as client:
            await client.subscribe(f"gatewayd/{KIT}/hubs/#", qos=1)
            self.subscribed.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                self.seen.append((str(msg.topic), json.loads(msg.payload)))

    def firsts(self) -> int:
        return len({(t, body["n"]) for t, body in self.seen})


@contextlib.asynccontextmanager
async def back_office(broker: Broker) -> AsyncIterator[BackOffice]:
    office = BackOffice()
    task = asyncio.create_task(office.run(broker))
    try:
        async with asyncio.timeout(10):
            await office.subscribed.wait()
        yield office
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class CountingLink(MqttLink):
    """The real link, counting the publishes that await their PUBACK at once."""

    in_flight = 0
    most_in_flight = 0
    publishes = 0
    on_publish: Callable[[int], None] | None = None

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float | None = 10.0,
    ) -> None:
        self.publishes += 1
        if self.on_publish is not None:
            self.on_publish(self.publishes)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await super().publish(topic, payload, qos=qos, retain=retain, timeout_s=timeout_s)
        finally:
            self.in_flight -= 1


def queue_messages(outbox: Outbox) -> None:
    """``MESSAGES`` events round the topics, as a broker outage would leave them."""
    for start in range(0, MESSAGES, 500):
        outbox.append_all(
            [
                NewMessage(
                    TOPICS[n % len(TOPICS)],
                    json.dumps({"n": n, "replayed": False}, separators=(",", ":")).encode(),
                )
                for n in range(start, min(start + 500, MESSAGES))
            ]
        )


def kit_link(broker: Broker, state_dir: Path, publisher_box: list[Publisher]) -> CountingLink:
    config = MqttConfig(
        kit_id=KIT,
        host=LOOPBACK,
        port=broker.port,
        state_dir=state_dir,
        reconnect_first_s=0.05,
        reconnect_max_s=0.3,
        max_inflight=WINDOW,
    )

    async def connected(_session: int) -> None:
        for publisher in publisher_box:
            publisher.wake()

    return CountingLink(config, state_topic=f"gatewayd/{KIT}/state", on_connected=connected)


def per_topic(seen: list[tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in TOPICS}
    for topic, body in seen:
        out[topic].append(body)
    return out


async def test_a_full_window_keeps_each_topics_order(broker: Broker, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=SystemClock())
    queue_messages(outbox)
    box: list[Publisher] = []
    link = kit_link(broker, tmp_path, box)
    publisher = Publisher(outbox, link, SystemClock())
    box.append(publisher)
    try:
        async with back_office(broker) as office:
            publisher.start()
            link.start()
            await wait_until(lambda: len(office.seen) >= MESSAGES, timeout=120)
            await wait_until(lambda: publisher.waiting() == 0, timeout=30)
    finally:
        await publisher.stop()
        await link.stop()
        outbox.close()
    assert publisher.window == WINDOW
    assert link.most_in_flight == WINDOW
    assert len(office.seen) == MESSAGES  # each once
    for topic, bodies in per_topic(office.seen).items():
        expected = list(range(TOPICS.index(topic), MESSAGES, len(TOPICS)))
        assert [b["n"] for b in bodies] == expected, topic
        assert not any(b["replayed"] for b in bodies)


async def test_a_connection_lost_mid_window_replays_in_order_and_loses_nothing(
    broker: Broker, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=SystemClock())
    queue_messages(outbox)
    box: list[Publisher] = []
    link = kit_link(broker, tmp_path, box)
    publisher = Publisher(outbox, link, SystemClock())
    # The publishes a takeover strands get no PUBACK: give up on them soon, not in 10 s.
    publisher.puback_timeout_s = 1.0
    box.append(publisher)
    kicks: list[asyncio.Task[None]] = []

    async def take_over() -> None:
        # Another client with the kit's client id: the broker drops the kit's connection.
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"gatewayd-{KIT}"):
            pass

    def kick_once(count: int) -> None:
        if count == MESSAGES // 6 and not kicks:
            kicks.append(asyncio.get_running_loop().create_task(take_over()))

    link.on_publish = kick_once
    try:
        async with back_office(broker) as office:
            publisher.start()
            link.start()
            await wait_until(lambda: office.firsts() >= MESSAGES, timeout=120)
            await wait_until(lambda: publisher.waiting() == 0, timeout=30)
    finally:
        await publisher.stop()
        await link.stop()
        outbox.close()
        for kick in kicks:
            with contextlib.suppress(Exception):
                await kick
    assert link.connects >= 2, "the connection was never lost: nothing was tested"
    replays = 0
    for topic, bodies in per_topic(office.seen).items():
        expected = list(range(TOPICS.index(topic), MESSAGES, len(TOPICS)))
        firsts: list[int] = []
        for body in bodies:
            if body["n"] in firsts:
                # Only a replay may come twice, and it says so.
                assert body["replayed"], (topic, body)
                replays += 1
            else:
                firsts.append(body["n"])
        # Every message arrived, and the first arrivals are in order: no hole, no reordering.
        assert firsts == expected, topic
    # The publishes stranded by the lost connection went again, marked (whether or not the
    # broker had taken them the first time).
    assert any(b["replayed"] for _, b in office.seen)
    assert replays == sum(1 for _, b in office.seen) - MESSAGES
