"""The kit's state is private whatever the umask: every file the daemon creates under its
state directory is 0600 and every directory 0700 (the journal holds install codes and
MPANs), and what is found readable by others at start is made private, said in one line.

Each test runs under umask 0022, the usual one outside systemd, which would otherwise leave
files 0644 and directories 0755.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatewayd.clock import SystemClock
from gatewayd.config.kit import parse_kit_config
from gatewayd.daemon.job_journal import JobJournal
from gatewayd.daemon.mqtt_link import SessionCounter
from gatewayd.daemon.outbox import Outbox
from gatewayd.daemon.service import Daemon
from gatewayd.private_files import make_private_dir
from gatewayd.survey.store import SurveyStore
from tests.unit.test_one_result_per_job import start
from tests.unit.test_survey import beacon, survey


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_journal_directory_and_its_entries_are_private(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path / "state" / "jobs")
    job = start("J-1").job
    journal.begin(job, "hub1", datetime(2026, 1, 1, tzinfo=UTC))
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "jobs") == 0o700
    assert mode(tmp_path / "state" / "jobs" / "J-1.json") == 0o600


def test_a_journal_entry_written_over_a_loose_temporary_file_is_private(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path / "jobs")
    # Left by an older version that wrote under the umask, before a kill.
    leftover = tmp_path / "jobs" / "J-1.json.tmp"
    leftover.write_text("{")
    leftover.chmod(0o644)
    journal.begin(start("J-1").job, "hub1", datetime(2026, 1, 1, tzinfo=UTC))
    assert mode(tmp_path / "jobs" / "J-1.json") == 0o600


def test_the_session_counter_is_private(tmp_path: Path) -> None:
    counter = SessionCounter(tmp_path / "state" / "mqtt-session")
    assert counter.reserve() == 1
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "mqtt-session") == 0o600


def test_the_outbox_its_log_and_its_index_are_private(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock=SystemClock())
    try:
        outbox.append("gatewayd/k/jobs/J-1/result", b"{}", retain=True)
        files = sorted(p.name for p in tmp_path.iterdir())
        # SQLite gives its write-ahead log and shared-memory index the database file's mode.
        assert files == ["outbox.sqlite3", "outbox.sqlite3-shm", "outbox.sqlite3-wal"]
        assert {name: mode(tmp_path / name) for name in files} == dict.fromkeys(files, 0o600)
    finally:
        outbox.close()


def test_stored_surveys_are_private(tmp_path: Path) -> None:
    SurveyStore(tmp_path / "state" / "surveys").record(survey([[beacon(200)]]))
    for path in (tmp_path / "state").rglob("*"):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path


def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    make_private_dir(shared / "a" / "b")
    assert mode(shared) == 0o755
    assert mode(shared / "a") == mode(shared / "a" / "b") == 0o700


def daemon(tmp_path: Path) -> Daemon:
    kit = parse_kit_config(
        {
            "hub": {"name": "hub1", "port": str(tmp_path / "no-hub")},
            "mqtt": {"kit_id": "kit-1", "state_dir": str(tmp_path / "var" / "state")},
            "metrics": {"enabled": False},
        }
    )
    return Daemon(kit, config_bytes=b"test")


def test_the_daemon_makes_its_state_directory_private(tmp_path: Path) -> None:
    daemon(tmp_path)._outbox.close()
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "state") == 0o700
    assert mode(tmp_path / "var" / "state" / "outbox.sqlite3") == 0o600


def test_state_left_readable_by_others_is_made_private_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "var" / "state"
    (state / "jobs").mkdir(parents=True)
    state.chmod(0o755)
    (state / "jobs").chmod(0o755)
    # As an older version left them under the umask: a journal entry, the session counter,
    # a damaged outbox moved aside.
    entry = state / "jobs" / "J-1.json"
    JobJournal(state / "jobs").begin(start("J-1").job, "hub1", datetime(2026, 1, 1, tzinfo=UTC))
    aside = state / "outbox.sqlite3.corrupt-20260101T000000Z"
    for path in (entry, state / "mqtt-session", aside):
        path.touch()
        path.chmod(0o644)
    (state / "jobs").chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not the kit's")
    elsewhere.chmod(0o644)
    (state / "link").symlink_to(elsewhere)
    with caplog.at_level(logging.INFO, logger="gatewayd"):
        daemon(tmp_path)._outbox.close()
    for path in (state / "jobs", entry, state / "mqtt-session", aside):
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    # The state directory was there already: the operator's, not changed. Nor is what a
    # symbolic link in it points to.
    assert mode(state) == 0o755
    assert mode(elsewhere) == 0o644
    said = [r.getMessage() for r in caplog.records if "made private" in r.getMessage()]
    assert len(said) == 1 and "count=4" in said[0], said
