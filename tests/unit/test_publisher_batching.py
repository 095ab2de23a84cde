"""The publisher's group commit and in-flight window, against a real outbox and a fake broker.

Group commit: what is emitted in one loop turn is stored in one transaction, a result is on
disk (fsynced) before its caller is told, events are fsynced within ``event_sync_s`` without
holding their publication, and nothing is published before the commit that stored it. The
window: several publishes await their PUBACK at once, issued in id order, new ones going out
while older ones wait; the first that fails is replayed with everything issued after it,
marked replayed; nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.contract import StampFields
from gatewayd.daemon.mqtt_link import MqttLink, MqttUnavailable, SessionCounter
from gatewayd.daemon.outbox import NewMessage, Outbox
from gatewayd.daemon.publisher import Publisher
from tests.unit.test_outbox_batches import commits, durable_commits
from tests.waiting import wait_until

TOPICS = [f"gatewayd/k/hubs/h{i}/events" for i in range(4)]
RESULT = "gatewayd/k/jobs/J-1/result"


class Event(BaseModel):
    n: int
    session: int
    seq: int
    replayed: bool


class Result(BaseModel):
    job_id: str = "J-1"
    outcome: str = "commissioned"


def event(n: int) -> Callable[[StampFields], BaseModel]:
    return lambda st: Event(n=n, session=st.session, seq=st.seq, replayed=st.replayed)


class FakeBroker(MqttLink):
    """The broker side of a link: up or down at will; every publish recorded in the order
    it was issued, and acknowledged when ``acking`` is set.

    ``fail_at``: the publish with that index (counted over the broker's life) fails as a
    dropped connection does, and the link goes down with it; the ones issued after it fail
    too, though a real broker may have taken them.
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(
            MqttConfig(kit_id="k", state_dir=state_dir), state_topic="gatewayd/k/state"
        )
        self.session = 3
        self.up = True
        self.acking = asyncio.Event()
        self.acking.set()
        self.issued: list[dict[str, Any]] = []
        self.acked: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.fail_at: int | None = None
        self.on_issue: Callable[[str, bytes], None] | None = None

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
        # Everything up to the first await is the PUBLISH going out, as in MqttLink.
        if not self.up:
            raise MqttUnavailable("down")
        index = len(self.issued)
        body = {"topic": topic, **json.loads(payload)}
        self.issued.append(body)
        if self.on_issue is not None:
            self.on_issue(topic, payload)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.acking.wait()
            if self.fail_at is not None and index >= self.fail_at:
                self.up = False
                raise MqttUnavailable("connection lost")
            self.acked.append(body)
        finally:
            self.in_flight -= 1


def make_rig(tmp_path: Path, **publisher: Any) -> tuple[Outbox, FakeBroker, Publisher]:
    """A real outbox, a fake broker and a publisher between them (``publisher``: its
    settings); the caller closes the outbox."""
    box = Outbox(tmp_path / "outbox.db", clock=SystemClock())
    broker = FakeBroker(tmp_path)
    return box, broker, Publisher(box, broker, SystemClock(), **publisher)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Outbox, FakeBroker, Publisher]]:
    box, broker, pub = make_rig(tmp_path, window=5)
    try:
        yield box, broker, pub
    finally:
        box.close()


def trace(box: Outbox) -> list[str]:
    statements: list[str] = []
    box._conn.set_trace_callback(statements.append)
    return statements


def stored(path: Path) -> list[bytes]:
    """The payloads committed to the outbox file, as another process would read them."""
    conn = sqlite3.connect(path)
    try:
        return [bytes(r[0]) for r in conn.execute("SELECT payload FROM messages ORDER BY id")]
    finally:
        conn.close()


# --- group commit ------------------------------------------------------------------------


async def test_a_loop_turns_events_are_stored_in_one_transaction(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    broker.up = False
    statements = trace(box)
    for n in range(50):
        pub.emit(TOPICS[n % 4], event(n))
    assert box.depth() == 0 and pub.queued() == 50 and pub.waiting() == 50
    await wait_until(lambda: pub.queued() == 0)
    assert commits(statements) == 1
    assert pub.commits == 1
    assert [json.loads(e.payload)["n"] for e in box.pending(100)] == list(range(50))


async def test_events_of_many_tasks_share_commits(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    broker.up = False
    statements = trace(box)

    async def hub(i: int) -> None:
        for k in range(10):
            pub.emit(TOPICS[i % 4], event(i * 100 + k))
            await asyncio.sleep(0)  # the next event comes in a later loop turn

    await asyncio.gather(*(hub(i) for i in range(20)))
    await wait_until(lambda: pub.queued() == 0)
    # 200 events from 20 tasks in about 10 loop turns: about 10 commits, not 200, and none
    # of them waits for an fsync.
    assert commits(statements) == pub.commits <= 12
    assert durable_commits(statements) == 0
    entries = box.pending(1000)
    assert len(entries) == 200
    for topic in TOPICS:
        seqs = [json.loads(e.payload)["seq"] for e in entries if e.topic == topic]
        assert seqs == list(range(1, len(seqs) + 1))


def counting_syncs(box: Outbox) -> list[bool]:
    """Every ``box.sync`` call's return from now on (True: it checkpointed something)."""
    calls: list[bool] = []
    real = box.sync

    def sync(*, checkpoint: bool | None = None) -> bool:
        done = real(checkpoint=checkpoint)
        calls.append(done)
        return done

    box.sync = sync  # type: ignore[method-assign]
    return calls


async def test_events_are_fsynced_within_event_sync_s_in_a_thread_and_published_before(
    tmp_path: Path,
) -> None:
    box, broker, pub = make_rig(tmp_path, window=5, event_sync_s=0.2)
    statements = trace(box)
    syncs = counting_syncs(box)
    pub.start()
    try:
        for turn in range(5):
            for n in range(10):
                pub.emit(TOPICS[n % 4], event(turn * 10 + n))
            await asyncio.sleep(0)
        # Published (and acknowledged) without waiting for an fsync...
        await wait_until(lambda: len(broker.acked) == 50)
        assert durable_commits(statements) == 0
        # ...and fsynced, all together, within event_sync_s, off the loop's thread.
        await wait_until(lambda: not box.unsynced)
        assert 1 <= syncs.count(True) <= 2
        assert durable_commits(statements) == 0
    finally:
        await pub.stop()
        box.close()


async def test_stop_fsyncs_what_was_written(tmp_path: Path) -> None:
    box, broker, pub = make_rig(tmp_path, event_sync_s=3600)
    broker.up = False
    syncs = counting_syncs(box)
    pub.emit(TOPICS[0], event(1))
    await wait_until(lambda: pub.queued() == 0)
    assert box.unsynced and syncs == []
    await pub.stop()
    assert not box.unsynced and syncs == [True]
    box.close()


async def test_a_result_is_on_disk_before_its_caller_is_told(
    rig: tuple[Outbox, FakeBroker, Publisher], tmp_path: Path
) -> None:
    box, broker, pub = rig
    broker.up = False
    told: list[list[bytes]] = []
    pub.emit_result(
        RESULT,
        Result(),
        settles="J-1",
        then=[(TOPICS[0], event(1))],
        on_settled=lambda: told.append(stored(tmp_path / "outbox.db")),
    )
    assert told == []  # not from inside emit_result: nothing is stored yet
    await wait_until(lambda: bool(told))
    assert len(told[0]) == 2 and b"commissioned" in told[0][0]
    record = box.job("J-1")
    assert record is not None and record.settled


async def test_nothing_is_published_before_the_commit_that_stored_it(
    rig: tuple[Outbox, FakeBroker, Publisher], tmp_path: Path
) -> None:
    _box, broker, pub = rig
    unstored: list[bytes] = []

    def check(_topic: str, payload: bytes) -> None:
        if payload not in stored(tmp_path / "outbox.db"):
            unstored.append(payload)

    broker.on_issue = check
    pub.start()
    try:
        for burst in range(5):
            for n in range(8):
                pub.emit(TOPICS[n % 4], event(burst * 8 + n))
            await asyncio.sleep(0)
        await wait_until(lambda: len(broker.acked) == 40)
    finally:
        await pub.stop()
    assert unstored == []


async def test_about_one_sqlite_statement_per_event_from_emit_to_removal(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    statements = trace(box)
    broker.up = False
    for n in range(100):
        pub.emit(TOPICS[n % 4], event(n))
    await wait_until(lambda: pub.queued() == 0)
    stored_with = len(statements)
    broker.up = True
    pub.start()
    try:
        pub.wake()
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    # Before: an append (5), an attempt mark (4) and an ack (5) per event, about 15 in all.
    assert stored_with <= 100 * 1.1
    assert len(statements) <= 100 * 1.5, [s[:40] for s in statements[stored_with:]]


async def test_an_event_emitted_while_the_pump_waits_goes_out_two_loop_turns_later(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    # The pump commits on waking and publishes what it stored at once. Before, a commit of
    # its own one turn after the emit woke the pump one turn later still: three turns.
    box, broker, pub = rig
    pub.start()
    try:
        for n in range(3):
            await wait_until(lambda: box.depth() == 0 and broker.in_flight == 0)
            for _ in range(5):  # the pump settles back into its wait
                await asyncio.sleep(0)
            issued = len(broker.issued)
            pub.emit(TOPICS[0], event(n))
            turns = 0
            while len(broker.issued) == issued and turns < 10:
                await asyncio.sleep(0)
                turns += 1
            assert turns == 2, f"event {n} went out {turns} loop turns after its emit"
    finally:
        await pub.stop()


async def test_what_the_pump_stored_is_published_from_memory_without_reading_it_back(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    statements = trace(box)
    pub.start()
    try:
        pub.emit(TOPICS[0], event(0))
        await wait_until(lambda: len(broker.acked) == 1 and box.depth() == 0)
        statements.clear()
        for n in range(1, 11):
            pub.emit(TOPICS[n % 4], event(n))
            await wait_until(partial(lambda k: len(broker.acked) == k, n + 1))
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    assert [b["n"] for b in broker.acked] == list(range(11))
    reads = [s for s in statements if s.startswith("SELECT id, topic")]
    # Before: two reads per event (its own, and one that found nothing more).
    assert reads == []


async def test_an_entry_a_bound_dropped_before_its_turn_is_never_published(
    tmp_path: Path,
) -> None:
    # Taking commits from memory must not outlive what the outbox still holds: an event
    # dropped by a later commit's space bound is not published, as a read would not find it.
    box, broker, pub = make_rig(tmp_path, window=2)
    box.max_messages = 3
    broker.acking.clear()
    pub.start()
    try:
        for n in range(2):
            pub.emit(TOPICS[n], event(n))
            await wait_until(partial(lambda k: len(broker.issued) == k, n + 1))
        # The window is full: 2 to 5 wait, and each commit from 3 on drops the oldest.
        for n in range(2, 6):
            pub.emit(TOPICS[n % 4], event(n))
            await wait_until(lambda: pub.queued() == 0)
        kept = [json.loads(e.payload)["n"] for e in box.pending(10)]
        broker.acking.set()
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
        box.close()
    assert kept == [3, 4, 5]
    assert [b["n"] for b in broker.issued] == [0, 1, 3, 4, 5]


async def test_an_entry_stored_by_another_hand_is_published_in_its_place(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    pub.start()
    try:
        pub.emit(TOPICS[0], event(0))
        await wait_until(lambda: box.depth() == 0 and len(broker.acked) == 1)
        box.append_all(
            [
                NewMessage(
                    TOPICS[1],
                    json.dumps({"n": 1, "session": 0, "seq": 0, "replayed": False}).encode(),
                )
            ]
        )
        pub.emit(TOPICS[2], event(2))
        await wait_until(lambda: box.depth() == 0 and len(broker.acked) == 3)
    finally:
        await pub.stop()
    assert [b["n"] for b in broker.acked] == [0, 1, 2]


async def test_a_stop_stores_what_was_emitted_just_before(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    broker.up = False
    pub.start()
    pub.emit(TOPICS[0], event(1))
    await pub.stop()
    assert box.depth() == 1


# --- the window ----------------------------------------------------------------------------


async def test_the_window_keeps_several_in_flight_issued_in_order(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    for n in range(40):
        pub.emit(TOPICS[n % 4], event(n))
    pub.commit()
    statements = trace(box)
    broker.acking.clear()
    pub.start()
    try:
        pub.wake()
        await wait_until(lambda: len(broker.issued) == 5)
        assert broker.in_flight == 5  # the whole window awaits its PUBACKs
        broker.acking.set()
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    assert broker.most_in_flight == 5
    assert [b["n"] for b in broker.issued] == list(range(40))
    assert [b["n"] for b in broker.acked] == list(range(40))
    assert not any(b["replayed"] for b in broker.issued)
    # Removed in a few transactions, not one per message.
    assert sum(s.upper().startswith("DELETE") for s in statements) <= 4


async def test_new_messages_go_out_while_the_oldest_awaits_its_puback(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    # A pump that waited for the head's PUBACK before sending anything more left the link
    # idle one way, and mosquitto's Nagle then held that PUBACK for 40 ms.
    box, broker, pub = rig
    broker.acking.clear()
    pub.start()
    try:
        pub.emit(TOPICS[0], event(0))
        await wait_until(lambda: len(broker.issued) == 1)
        for n in range(1, 4):
            pub.emit(TOPICS[n % 4], event(n))
            await wait_until(partial(lambda k: len(broker.issued) == k, n + 1))
        assert broker.in_flight == 4 and broker.acked == []
        broker.acking.set()
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    assert [b["n"] for b in broker.issued] == [0, 1, 2, 3]
    assert [b["n"] for b in broker.acked] == [0, 1, 2, 3]


async def test_a_link_lost_with_publishes_in_flight_leaves_the_pump_waiting(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    # A commit while the head awaited its PUBACK on a link just lost made the pump spin,
    # never yielding the loop again: nothing else ran.
    box, broker, pub = rig
    broker.acking.clear()
    pub.start()
    rescued = threading.Event()

    def rescue() -> None:  # from another thread: the only way out of a spinning loop
        rescued.set()
        broker.up = True

    timer = threading.Timer(5.0, rescue)
    try:
        pub.emit(TOPICS[0], event(0))
        await wait_until(lambda: len(broker.issued) == 1)
        broker.up = False  # the link drops; the PUBLISH in flight has no answer yet
        timer.start()
        pub.emit(TOPICS[1], event(1))
        await asyncio.sleep(0.2)
        timer.cancel()
        assert not rescued.is_set(), "the pump held the event loop until the link came back"
        assert pub.queued() == 0 and box.depth() == 2 and len(broker.issued) == 1
    finally:
        timer.cancel()
        broker.up = True
        broker.acking.set()
        await pub.stop()


async def test_a_failure_in_the_window_replays_it_and_all_issued_after_it(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    for n in range(30):
        pub.emit(TOPICS[n % 4], event(n))
    pub.commit()
    broker.fail_at = 12
    pub.start()
    try:
        pub.wake()
        await wait_until(lambda: not broker.up and broker.in_flight == 0)
        await wait_until(lambda: box.depth() == 30 - 12)
        broker.fail_at = None
        broker.up = True
        pub.wake()  # as a new connection does
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    acked = [(b["n"], b["replayed"]) for b in broker.acked]
    # Each went through once, in order; the first 12 as they were.
    assert [n for n, _ in acked] == list(range(30))
    assert acked[:12] == [(n, False) for n in range(12)]
    # The failed one and the window issued with it went again, marked replayed; the rest went
    # out for the first time.
    again = [replayed for _, replayed in acked[12:]]
    marked = again.index(False)
    assert 1 <= marked <= 5 and not any(again[marked:])
    # Issued in id order the first time round too.
    first_tries = [b["n"] for b in broker.issued if not b["replayed"]]
    assert first_tries == sorted(first_tries)
    assert set(first_tries) >= {*range(13), *range(12 + marked, 30)}


async def test_a_puback_that_never_comes_times_out_and_is_replayed(
    rig: tuple[Outbox, FakeBroker, Publisher],
) -> None:
    box, broker, pub = rig
    pub.puback_timeout_s = 0.2
    for n in range(3):
        pub.emit(TOPICS[0], event(n))
    pub.commit()
    broker.acking.clear()
    pub.start()
    try:
        pub.wake()
        await wait_until(lambda: len(broker.issued) == 3)
        # The oldest's deadline passes: the window is abandoned, the entries stay.
        await wait_until(lambda: broker.in_flight == 0)
        assert box.depth() == 3 and broker.acked == []
        broker.acking.set()
        pub.wake()
        await wait_until(lambda: box.depth() == 0)
    finally:
        await pub.stop()
    assert [(b["n"], b["replayed"]) for b in broker.acked] == [(0, True), (1, True), (2, True)]


# --- the session counter -------------------------------------------------------------------


async def test_the_session_file_is_read_once_while_the_broker_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real_current = SessionCounter.current

    def counting(self: SessionCounter) -> int:
        reads.append(self.path)
        return real_current(self)

    monkeypatch.setattr(SessionCounter, "current", counting)
    # A broker that is never there: the link keeps trying while events are created.
    config = MqttConfig(
        kit_id="k",
        host="127.0.0.1",
        port=1,
        state_dir=tmp_path,
        reconnect_first_s=0.01,
        reconnect_max_s=0.02,
    )
    link = MqttLink(config, state_topic="gatewayd/k/state")
    with Outbox(tmp_path / "outbox.db", clock=SystemClock()) as box:
        pub = Publisher(box, link, SystemClock())
        link.start()
        try:
            for n in range(200):
                pub.emit(TOPICS[n % 4], event(n))
                await asyncio.sleep(0)
            await wait_until(lambda: link.last_error is not None and pub.queued() == 0)
        finally:
            await link.stop()
        sessions = {json.loads(e.payload)["session"] for e in box.pending(1000)}
    assert len(reads) == 1
    assert len(sessions) == 1
