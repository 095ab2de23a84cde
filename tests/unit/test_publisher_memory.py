"""The publisher while the disk refuses writes: what the outbox cannot take is held in memory,
published from there, moved to the outbox in order when the disk works again, and a job's
result still settles its job once; nothing is published twice for a failed removal."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.contract import StampFields
from gatewayd.daemon.mqtt_link import MqttLink, MqttUnavailable
from gatewayd.daemon.outbox import Group, Outbox, OutboxEntry, OutboxError
from gatewayd.daemon.publisher import Publisher
from gatewayd_drivers.backoff import BackoffSettings

TOPIC = "gatewayd/k/hubs/h1/events"
FAST = BackoffSettings(first_s=0.01, max_s=0.05)
RESULT = "gatewayd/k/jobs/J-1/result"


class Event(BaseModel):
    n: int
    session: int
    seq: int


class Result(BaseModel):
    job_id: str = "J-1"
    outcome: str = "commissioned"


class FlakyOutbox(Outbox):
    """A real outbox whose disk can be made to refuse every write, as a full one does."""

    full = False

    def _refuse(self, doing: str) -> None:
        if self.full:
            raise OutboxError(f"outbox {self.path}: cannot {doing}: database or disk is full")

    def append_groups(self, groups: Sequence[Group]) -> list[list[OutboxEntry]]:
        self._refuse("append")
        return super().append_groups(groups)

    def ack_all(self, entry_ids: Sequence[int]) -> int:
        self._refuse("ack")
        return super().ack_all(entry_ids)

    def mark_attempted(self, entry_id: int) -> bool:
        self._refuse("mark attempted")
        return super().mark_attempted(entry_id)


class FakeLink(MqttLink):
    """The broker side: up or down at will, recording every publish it acknowledges."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            MqttConfig(kit_id="k", state_dir=state_dir), state_topic="gatewayd/k/state"
        )
        self.up = False
        self.sent: list[tuple[str, bytes, bool]] = []

    @property
    def connected(self) -> bool:
        return self.up

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        if not self.up:
            raise MqttUnavailable("down")
        await asyncio.sleep(0)
        self.sent.append((topic, payload, retain))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[FlakyOutbox, FakeLink, Publisher]]:
    box = FlakyOutbox(tmp_path / "outbox.db", clock=SystemClock())
    link = FakeLink(tmp_path)
    link.session = 7  # as after a first connection: no session to reserve on disk
    try:
        yield box, link, Publisher(box, link, SystemClock(), retry=FAST)
    finally:
        box.close()


def event(n: int) -> Callable[[StampFields], BaseModel]:
    return lambda st: Event(n=n, session=st.session, seq=st.seq)


def numbers(payloads: list[bytes]) -> list[int]:
    return [json.loads(p)["n"] for p in payloads if b'"n"' in p]


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_message_the_disk_refuses_is_published_from_memory(
    rig: tuple[FlakyOutbox, FakeLink, Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    box, link, pub = rig
    box.full = True
    with caplog.at_level(logging.WARNING, logger="gatewayd.daemon.publisher"):
        for n in range(3):
            pub.emit(TOPIC, event(n))
        pub.commit()  # as the loop's next turn would
    assert pub.held() == 3 and box.depth() == 0 and pub.waiting() == 3
    link.up = True
    pub.start()
    try:
        pub.wake()
        await until(lambda: len(link.sent) == 3)
        assert numbers([p for _, p, _ in link.sent]) == [0, 1, 2]
        await until(lambda: pub.waiting() == 0)
        assert pub.held() == 0
    finally:
        await pub.stop()
    # One line for the outage, not one per message.
    failing = [r for r in caplog.records if "outbox writes failing" in r.getMessage()]
    assert len(failing) == 1 and failing[0].levelno == logging.ERROR
    assert "disk is full" in failing[0].getMessage()


async def test_memory_moves_to_the_outbox_in_order_when_the_disk_works_again(
    rig: tuple[FlakyOutbox, FakeLink, Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    box, _link, pub = rig
    pub.emit(TOPIC, event(0))
    pub.commit()  # on disk
    box.full = True
    pub.emit(TOPIC, event(1))
    pub.emit(TOPIC, event(2))
    pub.commit()  # held in memory
    box.full = False
    with caplog.at_level(logging.WARNING, logger="gatewayd.daemon.publisher"):
        pub.emit(TOPIC, event(3))
        pub.commit()  # stored behind what memory held, never before it
    assert pub.held() == 0
    assert numbers([e.payload for e in box.pending()]) == [0, 1, 2, 3]
    assert any("outbox writes work again" in r.getMessage() for r in caplog.records)


async def test_the_pump_retries_the_disk_by_itself(
    rig: tuple[FlakyOutbox, FakeLink, Publisher],
) -> None:
    box, _link, pub = rig
    box.full = True
    pub.emit(TOPIC, event(0))
    pub.start()
    try:
        box.full = False  # space returns; nothing else happens
        await until(lambda: box.depth() == 1)
        assert pub.held() == 0
    finally:
        await pub.stop()


async def test_a_result_held_in_memory_settles_its_job_when_stored(
    rig: tuple[FlakyOutbox, FakeLink, Publisher],
) -> None:
    box, _link, pub = rig
    settled: list[str] = []
    box.full = True
    pub.emit_result(
        RESULT,
        Result(),
        settles="J-1",
        then=[(TOPIC, event(9))],
        on_settled=lambda: settled.append("J-1"),
    )
    pub.commit()
    assert settled == [] and pub.held() == 2
    assert box.job("J-1") is None
    box.full = False
    pub.emit(TOPIC, event(10))
    pub.commit()
    assert settled == ["J-1"]
    record = box.job("J-1")
    assert record is not None and record.settled
    entries = box.pending()
    assert [e.topic for e in entries] == [RESULT, TOPIC, TOPIC]
    assert entries[0].retain


async def test_a_result_published_from_memory_settles_its_job_when_the_disk_works(
    rig: tuple[FlakyOutbox, FakeLink, Publisher],
) -> None:
    box, link, pub = rig
    settled: list[str] = []
    box.full = True
    link.up = True
    pub.start()
    try:
        pub.emit_result(RESULT, Result(), settles="J-1", on_settled=lambda: settled.append("J-1"))
        await until(lambda: len(link.sent) == 1)
        assert link.sent[0][0] == RESULT and link.sent[0][2] is True  # retained
        assert settled == []  # the entry must stay while the ledger does not know
        box.full = False
        await until(lambda: settled == ["J-1"])
        record = box.job("J-1")
        assert record is not None and record.settled
        assert box.depth() == 0 and len(link.sent) == 1  # not stored, nor sent, again
    finally:
        await pub.stop()


async def test_an_entry_published_but_not_removable_is_not_sent_again(
    rig: tuple[FlakyOutbox, FakeLink, Publisher],
) -> None:
    box, link, pub = rig
    pub.emit(TOPIC, event(0))
    pub.commit()  # on disk
    box.full = True
    link.up = True
    pub.start()
    try:
        pub.wake()
        await until(lambda: len(link.sent) == 1)
        assert box.depth() == 1 and pub.waiting() == 0
        pub.emit(TOPIC, event(1))  # held, and published from memory
        await until(lambda: len(link.sent) == 2)
        # Each pass of the pump reads the outbox before memory: a wrong resend of the first
        # entry would come before this one.
        pub.emit(TOPIC, event(2))
        await until(lambda: len(link.sent) >= 3)
        assert numbers([p for _, p, _ in link.sent]) == [0, 1, 2]
        box.full = False
        await until(lambda: box.depth() == 0)
        assert len(link.sent) == 3
    finally:
        await pub.stop()


async def test_memory_is_bounded_and_drops_events_never_results(tmp_path: Path) -> None:
    box = FlakyOutbox(tmp_path / "outbox.db", clock=SystemClock())
    link = FakeLink(tmp_path)
    link.session = 1
    pub = Publisher(box, link, SystemClock(), max_held=3)
    try:
        box.full = True
        pub.emit(TOPIC, event(0))
        pub.emit_result(RESULT, Result(), settles="J-1")
        for n in range(1, 5):
            pub.emit(TOPIC, event(n))
        pub.commit()
        assert pub.held() == 3
        assert pub.dropped_held == 3
        box.full = False
        pub.emit(TOPIC, event(5))
        pub.commit()
        entries = box.pending()
        assert entries[0].topic == RESULT
        assert numbers([e.payload for e in entries]) == [3, 4, 5]
    finally:
        box.close()


async def test_a_stop_with_messages_only_in_memory_says_how_many_are_lost(
    rig: tuple[FlakyOutbox, FakeLink, Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    box, _link, pub = rig
    box.full = True
    pub.emit(TOPIC, event(0))
    pub.start()
    with caplog.at_level(logging.ERROR, logger="gatewayd.daemon.publisher"):
        await pub.stop()
    assert any("held=1" in r.getMessage() for r in caplog.records)
