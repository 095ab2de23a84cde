"""The durable outbox: order, acknowledgement, bounds, drop policy, reopen and damaged files."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.clock import VirtualClock
from gatewayd.daemon.outbox import (
    CHECKPOINT_COMMITS,
    CHECKPOINT_S,
    SCHEMA_VERSION,
    DropReason,
    MessageKind,
    NewMessage,
    Outbox,
    OutboxEntry,
    OutboxError,
)

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOPIC = "gatewayd/kit-1/event"


def clock() -> VirtualClock:
    return VirtualClock(wall_start=START, auto_advance=False)


def ids(entries: list[OutboxEntry]) -> list[int]:
    return [e.id for e in entries]


def payloads(box: Outbox) -> list[bytes]:
    return [e.payload for e in box.pending(10_000)]


# -- order, ack, reopen ---------------------------------------------------------------------


def test_order_is_kept_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        appended = [box.append(TOPIC, f"m{i}".encode()) for i in range(20)]
    assert ids(appended) == sorted(ids(appended))
    with Outbox(path, clock=clock()) as box:
        again = box.pending(100)
    assert ids(again) == ids(appended)
    assert [e.payload for e in again] == [f"m{i}".encode() for i in range(20)]
    assert all(e.topic == TOPIC and e.qos == 1 and not e.retain for e in again)


def test_pending_pages_with_limit_and_after(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        appended = ids([box.append(TOPIC, b"x") for _ in range(5)])
        first = box.pending(2)
        rest = box.pending(10, after=first[-1].id)
    assert ids(first) == appended[:2]
    assert ids(rest) == appended[2:]


def test_ack_removes_one_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        a, b, c = (box.append(TOPIC, p) for p in (b"a", b"b", b"c"))
        assert box.ack(b.id) is True
        assert box.ack(b.id) is False  # already gone
        assert box.ack(9999) is False
        assert ids(box.pending()) == [a.id, c.id]
        assert box.depth() == 2
        assert box.bytes() == a.size + c.size
    with Outbox(path, clock=clock()) as box:
        assert ids(box.pending()) == [a.id, c.id]
        assert (box.depth(), box.bytes()) == (2, a.size + c.size)


def test_ids_are_never_reused_after_the_outbox_empties(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        first = box.append(TOPIC, b"a")
        box.ack(first.id)
    with Outbox(path, clock=clock()) as box:
        assert box.depth() == 0
        second = box.append(TOPIC, b"b")
    assert second.id > first.id


def test_entry_fields_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    made = START - timedelta(minutes=5)
    with Outbox(path, clock=clock()) as box:
        entry = box.append(
            "gatewayd/kit-1/result/J1",
            b'{"ok":true}',
            qos=2,
            retain=True,
            kind=MessageKind.RESULT,
            created_at=made,
        )
    with Outbox(path, clock=clock()) as box:
        (back,) = box.pending()
    assert back.id == entry.id
    assert back.topic == "gatewayd/kit-1/result/J1"
    assert back.payload == b'{"ok":true}'
    assert (back.qos, back.retain, back.kind) == (2, True, MessageKind.RESULT)
    assert back.created_at == made
    assert back.created_at.tzinfo is not None


@given(payload=st.binary(max_size=2000), topic=st.text(min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_arbitrary_bytes_and_topics_round_trip(payload: bytes, topic: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "o.db"
        with Outbox(path, clock=clock()) as box:
            entry = box.append(topic, payload)
            assert entry.size == len(topic.encode()) + len(payload)
        with Outbox(path, clock=clock()) as box:
            (back,) = box.pending()
            assert box.bytes() == entry.size
    assert (back.topic, back.payload) == (topic, payload)


def test_created_at_defaults_to_the_clocks_wall_time(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        assert box.append(TOPIC, b"x").created_at == START


# -- replay bookkeeping ---------------------------------------------------------------------


def test_attempts_and_earlier_run_mark_resends(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        old = box.append(TOPIC, b"old")
        tried = box.append(TOPIC, b"tried")
        assert not old.is_resend
        assert box.mark_attempted(tried.id) is True
        assert box.mark_attempted(12345) is False
        by_id = {e.id: e for e in box.pending()}
        assert not by_id[old.id].is_resend
        assert by_id[tried.id].attempts == 1 and by_id[tried.id].is_resend
    with Outbox(path, clock=clock()) as box:
        fresh = box.append(TOPIC, b"fresh")
        by_id = {e.id: e for e in box.pending()}
    # Everything still queued from the earlier run is a replay; what this run appended is not.
    assert by_id[old.id].from_earlier_run and by_id[old.id].is_resend
    assert by_id[old.id].attempts == 0
    assert by_id[tried.id].attempts == 1
    assert not by_id[fresh.id].from_earlier_run and not by_id[fresh.id].is_resend


# -- bounds and the drop policy -------------------------------------------------------------


def test_count_bound_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock(), max_messages=3) as box:
        for i in range(5):
            box.append(TOPIC, f"m{i}".encode())
        assert payloads(box) == [b"m2", b"m3", b"m4"]
        assert box.depth() == 3
        assert box.dropped_total == {DropReason.COUNT: 2, DropReason.BYTES: 0, DropReason.AGE: 0}
    with Outbox(path, clock=clock(), max_messages=3) as box:
        assert box.dropped_total[DropReason.COUNT] == 2
        box.append(TOPIC, b"m5")
        assert box.dropped_total[DropReason.COUNT] == 3
        assert payloads(box) == [b"m3", b"m4", b"m5"]


def test_bytes_bound_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    topic = "t"  # 1 byte, so each entry below is 10 bytes
    with Outbox(path, clock=clock(), max_bytes=30) as box:
        for i in range(3):
            box.append(topic, bytes([i]) * 9)
        assert box.bytes() == 30
        assert box.dropped_total[DropReason.BYTES] == 0
        # 20 bytes more: the two oldest must go to fit.
        box.append(topic, b"n" * 19)
        assert payloads(box) == [bytes([2]) * 9, b"n" * 19]
        assert box.bytes() == 30
        assert box.dropped_total[DropReason.BYTES] == 2
    with Outbox(path, clock=clock(), max_bytes=30) as box:
        assert box.dropped_total == {DropReason.COUNT: 0, DropReason.BYTES: 2, DropReason.AGE: 0}
        assert box.bytes() == 30


def test_a_message_bigger_than_the_whole_outbox_is_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_bytes=50) as box:
        box.append("t", b"a" * 10)
        with pytest.raises(ValueError, match="larger than the whole outbox"):
            box.append("t", b"b" * 50)
        assert payloads(box) == [b"a" * 10]
        assert sum(box.dropped_total.values()) == 0


async def test_age_bound_drops_old_messages_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    c = clock()
    with Outbox(path, clock=c, max_age_s=3600) as box:
        box.append(TOPIC, b"old")
        await c.advance(1800)
        box.append(TOPIC, b"mid")
        assert box.oldest_age_s() == pytest.approx(1800)
        await c.advance(1801)  # "old" is now 3601 s old
        assert box.prune() == 1
        assert payloads(box) == [b"mid"]
        assert box.oldest_age_s() == pytest.approx(1801)
        assert box.dropped_total[DropReason.AGE] == 1
        await c.advance(1800)
        # An append prunes too, and never the new entry even when its own time is old.
        box.append(TOPIC, b"late", created_at=c.wall() - timedelta(hours=2))
        assert payloads(box) == [b"late"]
        assert box.dropped_total[DropReason.AGE] == 2
    with Outbox(path, clock=c, max_age_s=3600) as box:
        # Reopening prunes what aged while the kit was off ("late"), and keeps the counter.
        assert payloads(box) == []
        assert box.dropped_total[DropReason.AGE] == 3
        assert box.oldest_age_s() == 0.0


def test_results_are_dropped_only_when_no_event_is_left(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_messages=3) as box:
        box.append(TOPIC, b"r1", kind=MessageKind.RESULT, retain=True)
        box.append(TOPIC, b"e1")
        box.append(TOPIC, b"r2", kind=MessageKind.RESULT, retain=True)
        box.append(TOPIC, b"e2")  # the oldest event goes, not the older result
        assert payloads(box) == [b"r1", b"r2", b"e2"]
        box.append(TOPIC, b"r3", kind=MessageKind.RESULT, retain=True)
        assert payloads(box) == [b"r1", b"r2", b"r3"]
        # Only results left: the oldest result goes, and the new message is kept.
        box.append(TOPIC, b"e3")
        assert payloads(box) == [b"r2", b"r3", b"e3"]
        assert box.dropped_total[DropReason.COUNT] == 3


def test_bytes_bound_prefers_events_too(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_bytes=40) as box:
        box.append("t", b"R" * 19, kind=MessageKind.RESULT)
        box.append("t", b"e" * 9)
        box.append("t", b"f" * 9)
        box.append("t", b"g" * 9)  # over by 10: one event goes, the result stays
        assert payloads(box) == [b"R" * 19, b"f" * 9, b"g" * 9]


# -- any sequence of operations -------------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from(list(MessageKind)), st.integers(0, 12)),
        st.tuples(st.just("ack"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("attempt"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@given(ops=_ops)
@settings(max_examples=80, deadline=None)
def test_any_interleaving_keeps_order_and_loses_nothing_but_counted_drops(
    ops: list[tuple[str, object, int]],
) -> None:
    """A plain-list model of the outbox, bounds and drop policy included, agrees with it."""
    max_messages, max_bytes = 6, 60
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "o.db"

        def opened() -> Outbox:
            return Outbox(path, clock=clock(), max_messages=max_messages, max_bytes=max_bytes)

        box = opened()
        model: list[tuple[int, MessageKind, bytes, int]] = []  # id, kind, payload, attempts
        dropped = {DropReason.COUNT: 0, DropReason.BYTES: 0, DropReason.AGE: 0}
        last_id = 0
        try:
            for op, arg, n in ops:
                if op == "append":
                    assert isinstance(arg, MessageKind)
                    payload = f"{last_id}:".encode() + b"p" * n
                    entry = box.append("t", payload, kind=arg)
                    assert entry.id > last_id
                    last_id = entry.id
                    model.append((entry.id, arg, payload, 0))
                    # The policy: events oldest first, then results; never the new entry.
                    while True:
                        size = sum(1 + len(p) for _, _, p, _ in model)
                        if len(model) > max_messages:
                            reason = DropReason.COUNT
                        elif size > max_bytes:
                            reason = DropReason.BYTES
                        else:
                            break
                        older = model[:-1]
                        events = [m for m in older if m[1] is MessageKind.EVENT]
                        model.remove(events[0] if events else older[0])
                        dropped[reason] += 1
                elif op in ("ack", "attempt"):
                    assert isinstance(arg, int)
                    target = model[arg % len(model)][0] if model and arg < 15 else last_id + 7
                    if op == "ack":
                        assert box.ack(target) == any(m[0] == target for m in model)
                        model = [m for m in model if m[0] != target]
                    else:
                        assert box.mark_attempted(target) == any(m[0] == target for m in model)
                        model = [(i, k, p, a + (i == target)) for i, k, p, a in model]
                else:
                    box.close()
                    box = opened()
                got = box.pending(1000)
                assert [(e.id, e.kind, e.payload, e.attempts) for e in got] == model
                assert box.depth() == len(model)
                assert box.bytes() == sum(e.size for e in got)
                assert box.dropped_total == dropped
        finally:
            box.close()


# -- durability settings --------------------------------------------------------------------


def _commit_modes(statements: list[str], start: str | None = "NORMAL") -> list[str]:
    """The synchronous mode each COMMIT ran under, in order; ``start``: the mode before the
    first statement (the outbox sets it only to change it; opening leaves NORMAL)."""
    mode, modes = start or "", []
    for s in (s.upper() for s in statements):
        if s.startswith("PRAGMA SYNCHRONOUS="):
            mode = s.split("=", 1)[1]
        elif s == "COMMIT":
            modes.append(mode)
    return modes


def test_file_is_wal_and_results_commit_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        statements: list[str] = []
        box._conn.set_trace_callback(statements.append)
        entry = box.append(TOPIC, b"result", retain=True, kind=MessageKind.RESULT)
        assert not box.unsynced
        box.mark_attempted(entry.id)
        box.ack(entry.id)
        # Not fsynced yet: a power cut could resend the result (consumers dedupe it).
        assert box.unsynced and box.needs_sync
    # The result's commit (the first) runs under FULL, fsyncing the log; the others under
    # NORMAL.
    assert _commit_modes(statements) == ["FULL", "NORMAL", "NORMAL"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
    conn.close()


def _in_database_file_alone(path: Path, tmp_path: Path) -> list[bytes]:
    """The payloads in the database file without its log: what a checkpoint copied there."""
    copy = tmp_path / "alone.db"
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone():
            return []  # not even the schema reached the database yet
        return [bytes(r[0]) for r in conn.execute("SELECT payload FROM messages ORDER BY id")]
    finally:
        conn.close()


def test_events_alone_wait_for_sync_and_a_durable_commit_fsyncs_them(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        statements: list[str] = []
        box._conn.set_trace_callback(statements.append)
        box.append(TOPIC, b"e1")
        box.append(TOPIC, b"e2")
        assert box.unsynced
        assert _commit_modes(statements) == ["NORMAL", "NORMAL"]
        # The sync fsyncs the log with a durable commit on a connection of its own: none of
        # the owner's statements, and no checkpoint yet (it would cost the next commit an
        # fsync of the restarted log's header).
        assert box.sync() is True
        assert not box.unsynced and box.needs_sync
        assert _commit_modes(statements) == ["NORMAL", "NORMAL"]
        assert _in_database_file_alone(path, tmp_path) == []
        # Nothing new: nothing to do.
        assert box.sync() is False
        # A durable commit fsyncs the events written before it.
        box.append(TOPIC, b"e3")
        assert box.unsynced
        box.append_all([NewMessage("r", b"result", retain=True, kind=MessageKind.RESULT)])
        assert not box.unsynced
        assert _commit_modes(statements)[-1] == "FULL"
        box.append(TOPIC, b"e4")
        box.begin_job("J-1", START)
        assert not box.unsynced
        # A checkpoint copies the log into the database (fsyncing the log before, the
        # database after).
        assert box.sync(checkpoint=True) is True
        assert not box.needs_sync
        assert _in_database_file_alone(path, tmp_path) == [b"e1", b"e2", b"e3", b"result", b"e4"]
        assert [e.payload for e in box.pending()] == [b"e1", b"e2", b"e3", b"result", b"e4"]


def test_a_sync_fsyncs_the_log_without_a_transaction_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        box.append(TOPIC, b"e1")
        box.sync(checkpoint=True)  # the sync's connection and descriptor now exist
        box.append(TOPIC, b"e2")
        holder = box._sync_conn
        assert holder is not None
        # Another connection holds SQLite's write lock: an fsync of the log needs none.
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert box.sync(checkpoint=False) is True
        finally:
            holder.execute("ROLLBACK")
        assert not box.unsynced


def test_a_sync_checkpoints_every_so_many_commits_or_seconds(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    virtual = clock()
    with Outbox(path, clock=virtual) as box:
        box.sync(checkpoint=True)  # what opening it wrote
        for n in range(CHECKPOINT_COMMITS - 1):
            box.append(TOPIC, f"e{n}".encode())
        box.sync()
        assert box.needs_sync and _in_database_file_alone(path, tmp_path) == []
        box.append(TOPIC, b"last")
        assert box.sync() and not box.needs_sync
        assert len(_in_database_file_alone(path, tmp_path)) == CHECKPOINT_COMMITS
        box.append(TOPIC, b"later")
        assert box.sync() and box.needs_sync
        asyncio.run(virtual.advance(CHECKPOINT_S))
        assert box.sync() and not box.needs_sync
        assert _in_database_file_alone(path, tmp_path)[-1] == b"later"


def test_sync_from_a_thread_while_the_owner_appends_and_acks(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    stop = threading.Event()
    errors: list[BaseException] = []
    with Outbox(path, clock=clock()) as box:

        def syncing() -> None:
            try:
                while not stop.is_set():
                    box.sync()
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=syncing)
        worker.start()
        try:
            for n in range(300):
                box.append(TOPIC, f"e{n}".encode())
                if n % 3 == 2:
                    box.ack_all(box.publishable(1))
        finally:
            stop.set()
            worker.join(30)
        assert not errors
        box.sync(checkpoint=True)
        assert not box.unsynced and not box.needs_sync
        assert [e.payload for e in box.pending(1000)] == [f"e{n}".encode() for n in range(100, 300)]
    assert _in_database_file_alone(path, tmp_path) == [f"e{n}".encode() for n in range(100, 300)]


def test_sync_of_an_unwritable_file_is_an_outbox_error(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        box.append(TOPIC, b"e1")
        # A sync connection that fails (here: closed) is an OutboxError, not sqlite3's own.
        broken = sqlite3.connect(":memory:")
        broken.close()
        box._sync_conn = broken
        with pytest.raises(OutboxError, match="cannot sync"):
            box.sync(checkpoint=True)
        box._sync_conn = None
        assert box.unsynced and box.sync()


# -- bad input ------------------------------------------------------------------------------


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "o.db", clock=clock(), max_messages=0)
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        with pytest.raises(ValueError, match="qos"):
            box.append(TOPIC, b"x", qos=0)
        with pytest.raises(ValueError, match="timezone"):
            box.append(TOPIC, b"x", created_at=datetime(2025, 1, 1))
        with pytest.raises(ValueError, match="topic"):
            box.append("", b"x")
        assert box.depth() == 0


# -- damaged or unreachable files -----------------------------------------------------------


def test_garbage_file_is_moved_aside_and_a_fresh_outbox_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    garbage = b"this is not an sqlite database\n" * 200
    path.write_bytes(garbage)
    with (
        caplog.at_level(logging.ERROR, logger="gatewayd.daemon.outbox"),
        Outbox(path, clock=clock()) as box,
    ):
        assert box.recovered_from == tmp_path / "outbox.db.corrupt-20250601T120000Z"
        assert box.depth() == 0
        box.append(TOPIC, b"after")
        assert payloads(box) == [b"after"]
    assert (tmp_path / "outbox.db.corrupt-20250601T120000Z").read_bytes() == garbage
    assert any(
        r.levelno == logging.ERROR and str(path) in r.getMessage() and "corrupt" in r.getMessage()
        for r in caplog.records
    )


def test_damaged_pages_are_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        for i in range(300):
            box.append(TOPIC, f"{i}".encode() * 50)
    # Closing the last connection checkpoints the WAL into the file; now damage its middle.
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[4096 : 6 * 4096] = b"\xa5" * (5 * 4096)
    path.write_bytes(bytes(data))
    with Outbox(path, clock=clock()) as box:
        assert box.recovered_from is not None
        assert box.recovered_from.exists()
        assert box.depth() == 0
    with Outbox(path, clock=clock()) as box:  # the fresh file is sound
        assert box.recovered_from is None


def test_two_recoveries_in_the_same_second_keep_both_files(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"x" * 5000)
    Outbox(path, clock=clock()).close()
    path.unlink()
    for side in tmp_path.glob("outbox.db-*"):
        side.unlink()
    path.write_bytes(b"y" * 5000)
    with Outbox(path, clock=clock()) as box:
        assert box.recovered_from == tmp_path / "outbox.db.corrupt-20250601T120000Z-2"
    assert (tmp_path / "outbox.db.corrupt-20250601T120000Z").read_bytes() == b"x" * 5000


def test_unreachable_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "outbox.db"
    with pytest.raises(OutboxError, match=re.escape(str(path))):
        Outbox(path, clock=clock())
    assert not list(tmp_path.iterdir())  # nothing created, nothing moved


def test_a_directory_in_place_of_the_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.mkdir()
    with pytest.raises(OutboxError, match=re.escape(str(path))):
        Outbox(path, clock=clock())
    assert path.is_dir()


def test_a_newer_schema_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        box.append(TOPIC, b"keep me")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    conn.close()
    with pytest.raises(OutboxError, match="newer gatewayd"):
        Outbox(path, clock=clock())
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT payload FROM messages").fetchall() == [(b"keep me",)]
    conn.close()


def test_errors_after_open_are_outbox_errors(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", clock=clock())
    box.close()
    with pytest.raises(OutboxError, match=re.escape(str(tmp_path / "o.db"))):
        box.append(TOPIC, b"x")
    with pytest.raises(OutboxError, match=re.escape(str(tmp_path / "o.db"))):
        box.pending()


async def test_drops_are_logged_once_a_minute_not_once_a_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = clock()
    with (
        caplog.at_level(logging.WARNING, logger="gatewayd.daemon.outbox"),
        Outbox(tmp_path / "o.db", clock=c, max_messages=1) as box,
    ):
        for _ in range(20):
            box.append(TOPIC, b"x")
        await c.advance(61)
        box.append(TOPIC, b"x")
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 2
    assert "count:20" in lines[-1]


def test_an_empty_file_beside_a_non_empty_wal_is_damage_not_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a full disk or a crash of the filesystem can leave: the database file truncated to
    # nothing while its write-ahead log still holds the queued messages. SQLite would open it
    # as a new, empty database and throw the log away without a word.
    path = tmp_path / "outbox.db"
    box = Outbox(path, clock=clock())
    for i in range(5):
        box.append(TOPIC, f"m{i}".encode())
    wal = tmp_path / "outbox.db-wal"
    copy = tmp_path / "copy"
    copy.mkdir()
    # Copied while open, so the log is not yet checkpointed into the file.
    log = wal.read_bytes()
    (copy / "outbox.db-wal").write_bytes(log)
    box.close()
    (copy / "outbox.db").write_bytes(b"")
    assert (copy / "outbox.db-wal").stat().st_size > 0
    with (
        caplog.at_level(logging.ERROR, logger="gatewayd.daemon.outbox"),
        Outbox(copy / "outbox.db", clock=clock()) as fresh,
    ):
        assert fresh.recovered_from == copy / "outbox.db.corrupt-20250601T120000Z"
        assert fresh.depth() == 0
    # The log goes aside with its file, for anyone who wants to dig the messages out.
    assert (copy / "outbox.db.corrupt-20250601T120000Z-wal").read_bytes() == log
    assert any(
        r.levelno == logging.ERROR and "corrupt" in r.getMessage() and "empty" in r.getMessage()
        for r in caplog.records
    )


def _log_pages(path: Path) -> int:
    """Pages the log holds now; the log starts again at the next write."""
    conn = sqlite3.connect(path)
    try:
        busy, log_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    assert busy == 0 and copied == log_pages
    return int(log_pages)


def test_an_event_costs_the_log_five_pages_from_append_to_removal(tmp_path: Path) -> None:
    # Every page a commit changes goes to the log again, and the log is what each sync
    # fsyncs and each checkpoint copies. The drop order's index cost two of seven.
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        box.ack_all(box.append_all([NewMessage(TOPIC, b"warm-up")]))
        _log_pages(path)
        for n in range(10):
            box.ack_all(box.append_all([NewMessage(TOPIC, f"e{n}".encode())]))
        assert _log_pages(path) <= 10 * 5


def test_a_file_from_before_loses_the_drop_order_index(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        box.append(TOPIC, b"e1")
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX messages_drop_order ON messages (precedence, id)")
    conn.commit()
    conn.close()
    with Outbox(path, clock=clock()) as box:
        assert payloads(box) == [b"e1"]
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")]
    finally:
        conn.close()
    assert "messages_drop_order" not in names
