"""The outbox's batch calls: many groups in one transaction, acknowledgements in one, and the
lean read the pump drains with; each costs a bounded number of SQLite statements."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatewayd.clock import VirtualClock
from gatewayd.daemon.outbox import DropReason, Group, MessageKind, NewMessage, Outbox

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TOPIC = "gatewayd/kit-1/hubs/h1/events"


def clock() -> VirtualClock:
    return VirtualClock(wall_start=START, auto_advance=False)


def event(n: int) -> NewMessage:
    return NewMessage(TOPIC, f"m{n}".encode())


@contextmanager
def traced(box: Outbox) -> Iterator[list[str]]:
    """Every SQL statement the outbox runs inside the block, as SQLite reports it."""
    statements: list[str] = []
    box._conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        box._conn.set_trace_callback(None)


def commits(statements: list[str]) -> int:
    """COMMITs, durable or not."""
    return [s.upper() for s in statements].count("COMMIT")


def durable_commits(statements: list[str]) -> int:
    """COMMITs made under ``synchronous=FULL``: one fsync of the log each."""
    mode, count = "", 0
    for s in statements:
        upper = s.upper()
        if upper.startswith("PRAGMA SYNCHRONOUS="):
            mode = upper.split("=", 1)[1]
        elif upper == "COMMIT" and mode == "FULL":
            count += 1
    return count


def test_groups_are_stored_in_one_durable_transaction_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        groups = [Group([event(n)]) for n in range(50)]
        groups.append(
            Group(
                [NewMessage("r", b"result", retain=True, kind=MessageKind.RESULT), event(50)],
                settles="J-1",
            )
        )
        with traced(box) as statements:
            stored = box.append_groups(groups)
        assert durable_commits(statements) == 1
        assert [s.upper() for s in statements].count("COMMIT") == 1
        assert [len(g) for g in stored] == [1] * 50 + [2]
        ids = [e.id for g in stored for e in g]
        assert ids == sorted(ids)
        assert [e.payload for e in box.pending(100)] == [
            *(f"m{n}".encode() for n in range(50)),
            b"result",
            b"m50",
        ]
        record = box.job("J-1")
        assert record is not None and record.settled


def test_a_batch_costs_about_one_statement_per_message(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        with traced(box) as statements:
            box.append_groups([Group([event(n)]) for n in range(100)])
        # One INSERT each, and a handful for the transaction and the bounds.
        assert len(statements) <= 100 + 6, statements[-8:]
        entries = box.publishable(100)
        with traced(box) as statements:
            assert box.ack_all(entries) == 100
        assert len(statements) <= 5, statements


def test_a_wrong_group_writes_nothing_of_the_batch(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_bytes=100) as box:
        with pytest.raises(ValueError, match="larger than the whole outbox"):
            box.append_groups([Group([event(1)]), Group([NewMessage("t", b"x" * 200)])])
        assert box.depth() == 0 and box.pending() == []
        with pytest.raises(ValueError, match="larger than the whole outbox"):
            box.check([NewMessage("t", b"x" * 200)])


def test_bounds_treat_a_batch_as_appends_one_after_the_other(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_messages=3) as box:
        box.append_groups([Group([event(n)]) for n in range(5)])
        # As five appends would leave it: the newest three, the two oldest counted dropped.
        assert [e.payload for e in box.pending()] == [b"m2", b"m3", b"m4"]
        assert box.dropped_total[DropReason.COUNT] == 2
        # The last group is never dropped, even larger than the count bound on its own.
        box.append_groups([Group([event(n) for n in range(5, 10)])])
        assert [e.payload for e in box.pending()] == [f"m{n}".encode() for n in range(5, 10)]


def test_publishable_says_what_is_a_resend(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock()) as box:
        old = box.append(TOPIC, b"old")
    with Outbox(path, clock=clock()) as box:
        tried = box.append(TOPIC, b"tried", retain=True)
        box.mark_attempted(tried.id)
        fresh = box.append(TOPIC, b"fresh")
        by_id = {p.id: p for p in box.publishable()}
        full = {e.id: e for e in box.pending()}
    assert by_id[old.id].resend and by_id[tried.id].resend and not by_id[fresh.id].resend
    for entry_id, p in by_id.items():
        e = full[entry_id]
        assert (p.topic, p.payload, p.qos, p.retain, p.resend, p.size) == (
            e.topic,
            e.payload,
            e.qos,
            e.retain,
            e.is_resend,
            e.size,
        )


def test_ack_all_keeps_the_gauges_right_when_a_bound_dropped_some_meanwhile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, clock=clock(), max_messages=4) as box:
        box.append_groups([Group([event(n)]) for n in range(3)])
        first = box.publishable()
        # Three more push the oldest two out while the first three are "in flight".
        box.append_groups([Group([event(n)]) for n in range(3, 6)])
        assert box.depth() == 4
        assert box.ack_all(first) == 1  # only m2 was still there
        assert box.depth() == 3
        left = box.pending()
        assert [e.payload for e in left] == [b"m3", b"m4", b"m5"]
        assert box.bytes() == sum(e.size for e in left)
        assert box.ack_all([]) == 0
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (3,)
    conn.close()


def test_the_age_prune_searches_its_index_not_every_older_row(tmp_path: Path) -> None:
    # With "id < ?" beside "created_at < ?" SQLite picked the rowid range, a scan of every
    # older entry on every append: a backlog of 10,000 made each append cost milliseconds.
    with Outbox(tmp_path / "o.db", clock=clock()) as box:
        box.append_groups([Group([event(n)]) for n in range(200)])
        box._conn.execute("ANALYZE")
        box._next_age_prune = float("-inf")  # the append looks for expired entries now
        with traced(box) as statements:
            box.append_groups([Group([event(1000)])])
        aged = [s for s in statements if "created_at <" in s]
        assert aged, statements
        for statement in aged:
            plan = " ".join(
                str(row[-1]) for row in box._conn.execute("EXPLAIN QUERY PLAN " + statement)
            )
            assert "messages_created_at" in plan, (statement, plan)
