"""A start_job the disk cannot record: refused with storage_error naming the file and the OS
error, nothing left started or half-written, and the job id usable once the disk works."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from gatewayd.contract import ErrorResponse, StartJobResponse
from gatewayd.daemon import job_journal
from gatewayd.daemon.outbox import Outbox, OutboxError
from tests.unit.test_one_result_per_job import KitRun, kit_run, start


def no_space(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing_disk(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


def no_descriptors(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


def assert_nothing_started(run: KitRun, job_id: str) -> None:
    assert run.runner.count() == 0
    assert list(run.journal.directory.iterdir()) == []
    assert run.outbox.job(job_id) is None


@pytest.mark.parametrize(
    ("where", "fault", "words"),
    [
        ("fsync", no_space, "No space left on device"),
        ("fsync", failing_disk, "Input/output error"),
        ("open", no_descriptors, "Too many open files"),
    ],
)
async def test_a_journal_the_disk_refuses(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    fault: Callable[..., Any],
    words: str,
) -> None:
    async with kit_run(tmp_path) as run:
        if where == "open":
            # Only the journal's own open: pytest and SQLite keep theirs.
            monkeypatch.setattr(job_journal, "open", fault, raising=False)
        else:
            monkeypatch.setattr(job_journal.os, "fsync", fault)
        answer = run.runner.start(start("J-1"))
        monkeypatch.undo()
        assert isinstance(answer, ErrorResponse)
        assert answer.error.code.value == "storage_error"
        assert str(run.journal.directory / "J-1.json") in answer.error.reason
        assert words in answer.error.reason
        assert_nothing_started(run, "J-1")
        assert isinstance(run.runner.start(start("J-1")), StartJobResponse)


async def test_a_ledger_the_disk_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Outbox, job_id: str, started_at: datetime) -> bool:
        raise OutboxError(f"outbox {self.path}: cannot record the job's start: disk is full")

    async with kit_run(tmp_path) as run:
        monkeypatch.setattr(Outbox, "begin_job", full)
        answer = run.runner.start(start("J-1"))
        monkeypatch.undo()
        assert isinstance(answer, ErrorResponse)
        assert answer.error.code.value == "storage_error"
        assert str(run.outbox.path) in answer.error.reason
        assert_nothing_started(run, "J-1")  # the journal entry was taken back
        assert isinstance(run.runner.start(start("J-1")), StartJobResponse)
