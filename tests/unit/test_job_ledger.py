"""The job ledger in the outbox's file: ids remembered across reopen, a result and its settle
mark in one transaction, the bounds, and a file from before the ledger."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatewayd.clock import VirtualClock
from gatewayd.daemon import job_ledger
from gatewayd.daemon.outbox import MessageKind, NewMessage, Outbox, OutboxError

START = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RESULT = "gatewayd/kit-1/jobs/J-1/result"


def clock() -> VirtualClock:
    return VirtualClock(wall_start=START, auto_advance=False)


def result_and_notice() -> list[NewMessage]:
    return [
        NewMessage(RESULT, b"result", retain=True, kind=MessageKind.RESULT),
        NewMessage("gatewayd/kit-1/aborts", b"notice"),
    ]


def test_a_started_job_is_remembered_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        assert box.job("J-1") is None
        assert box.begin_job("J-1", START) is True
        assert box.begin_job("J-1", START) is False  # an id runs once
    with Outbox(path, clock=clock()) as box:
        record = box.job("J-1")
        assert record is not None
        assert record.started_at == START and not record.settled


def test_a_result_and_its_settle_mark_are_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        box.begin_job("J-1", START)
        entries = box.append_all(result_and_notice(), settles="J-1")
        assert [e.payload for e in entries] == [b"result", b"notice"]
        assert entries[0].retain and entries[0].kind is MessageKind.RESULT
    with Outbox(path, clock=clock()) as box:
        record = box.job("J-1")
        assert record is not None and record.settled
        assert [e.payload for e in box.pending()] == [b"result", b"notice"]


def test_a_failed_settle_leaves_neither_the_result_nor_the_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        box.begin_job("J-1", START)
        monkeypatch.setattr(job_ledger, "record_settled", fail)
        with pytest.raises(OutboxError, match="disk is full"):
            box.append_all(result_and_notice(), settles="J-1")
        assert box.depth() == 0 and box.pending() == []
    monkeypatch.undo()
    with Outbox(path, clock=clock()) as box:
        record = box.job("J-1")
        assert record is not None and not record.settled
        assert box.pending() == []


def test_settling_a_job_the_ledger_never_saw_start_records_it(tmp_path: Path) -> None:
    # A job interrupted under a gatewayd from before the ledger has only its journal entry.
    with Outbox(tmp_path / "outbox.db", clock=clock()) as box:
        box.settle_job("J-old")
        record = box.job("J-old")
        assert record is not None and record.settled
        assert box.begin_job("J-old", START) is False


def test_forget_takes_back_a_start_but_never_a_settled_job(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=clock()) as box:
        box.begin_job("J-1", START)
        box.forget_job("J-1")
        assert box.job("J-1") is None
        assert box.begin_job("J-1", START) is True  # the id is usable again
        box.append_all([], settles="J-1")
        box.forget_job("J-1")
        assert box.job("J-1") is not None


async def test_a_second_settle_keeps_the_first_mark(tmp_path: Path) -> None:
    c = clock()
    with Outbox(tmp_path / "outbox.db", clock=c) as box:
        box.settle_job("J-1")
        first = box.job("J-1")
        await c.advance(3600)
        box.settle_job("J-1")
        assert box.job("J-1") == first


async def test_ids_are_forgotten_after_the_age_bound(tmp_path: Path) -> None:
    c = clock()
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=c, max_job_age_s=3600) as box:
        box.begin_job("J-old", c.wall())
        box.append_all([], settles="J-old")
        await c.advance(1800)
        box.begin_job("J-new", c.wall())
        await c.advance(1801)
    with Outbox(path, clock=c, max_job_age_s=3600) as box:  # pruned at open
        assert box.job("J-old") is None
        assert box.job("J-new") is not None


def test_the_count_bound_forgets_the_oldest_settled_ids_first(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", clock=clock(), max_job_ids=3) as box:
        box.begin_job("J-running", START - timedelta(days=1))  # its result is still owed
        for n in range(5):
            box.begin_job(f"J-{n}", START + timedelta(minutes=n))
            box.append_all([], settles=f"J-{n}")
        box.begin_job("J-5", START + timedelta(minutes=5))  # prunes to the bound first
        assert [n for n in range(5) if box.job(f"J-{n}") is not None] == [2, 3, 4]
        assert box.job("J-running") is not None
        assert box.job("J-5") is not None


def test_an_outbox_from_before_the_ledger_opens_and_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path, clock=clock()) as box:
        box.append(RESULT, b"kept", kind=MessageKind.RESULT)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE jobs")
    conn.close()
    with Outbox(path, clock=clock()) as box:
        assert [e.payload for e in box.pending()] == [b"kept"]
        assert box.begin_job("J-1", START) is True
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version == (1,)  # an older gatewayd still opens the file and ignores the ledger


def test_ledger_bounds_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_job_ids"):
        Outbox(tmp_path / "o.db", clock=clock(), max_job_ids=0)
    with pytest.raises(ValueError, match="max_job_age_s"):
        Outbox(tmp_path / "o.db", clock=clock(), max_job_age_s=0)


def test_a_batch_bigger_than_the_outbox_is_refused_whole(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_bytes=40) as box:
        with pytest.raises(ValueError, match="larger than the whole outbox"):
            box.append_all([NewMessage("t", b"x" * 30), NewMessage("t", b"y" * 30)])
        assert box.depth() == 0


def test_a_batch_is_never_dropped_by_the_bounds_it_causes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", clock=clock(), max_messages=2) as box:
        old = box.append("t", b"old")
        new = box.append_all([NewMessage("t", b"a"), NewMessage("t", b"b")])
        assert [e.id for e in box.pending()] == [e.id for e in new]
        assert old.id not in [e.id for e in box.pending()]
