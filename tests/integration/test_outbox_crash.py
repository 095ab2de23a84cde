"""The outbox under SIGKILL: nothing acknowledged as queued is lost, and the file stays sound.

A child process appends (and acknowledges some) in a tight loop, printing each id once the
call has returned; the test kills it mid-stream, several times over the same file, and checks
what is on disk against what the child had reported.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gatewayd.clock import SystemClock
from gatewayd.daemon.outbox import Outbox

REPO = Path(__file__).resolve().parents[2]

# Lines to read before each kill: different points in the append/ack/checkpoint cycle.
KILL_AFTER_LINES = (157, 404, 61, 733)


def run_and_kill(path: Path, start: int, lines: int) -> list[str]:
    """Run the writer, SIGKILL it after ``lines`` report lines, return every complete line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.outbox_writer_child", str(path), str(start)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"ready\n"
        seen: list[bytes] = []
        while len(seen) < lines:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.wait()}"
            seen.append(line)
        proc.send_signal(signal.SIGKILL)
        seen.extend(proc.stdout.readlines())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # A line cut short by the kill was never reported whole: it does not count.
    return [line.decode().rstrip("\n") for line in seen if line.endswith(b"\n")]


@pytest.mark.timeout(60)
def test_sigkill_mid_stream_loses_nothing_reported_as_queued(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    payload_of: dict[int, str] = {}  # every id the child reported appended
    acked: set[int] = set()  # every id the child reported acknowledged
    next_n = 0
    for lines in KILL_AFTER_LINES:
        reported = run_and_kill(path, next_n, lines)
        # The kill can land after an ack has committed but before its K line: the last entry
        # reported appended, when it is one the child acknowledges, may be gone unreported.
        ack_in_flight: int | None = None
        if reported and reported[-1].startswith("A ") and int(reported[-1].split()[2]) % 3 == 0:
            ack_in_flight = int(reported[-1].split()[1])
        for line in reported:
            fields = line.split()
            if fields[0] == "A":
                payload_of[int(fields[1])] = f"msg {fields[2]}"
                next_n = int(fields[2]) + 1
            else:
                assert fields[0] == "K", line
                acked.add(int(fields[1]))
        # The file as the kill left it (WAL included) is intact.
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        conn.close()

        with Outbox(path, clock=SystemClock()) as box:
            assert box.recovered_from is None
            present = box.pending(100_000)
            assert box.depth() == len(present)
        present_ids = [e.id for e in present]
        if ack_in_flight is not None and ack_in_flight not in present_ids:
            acked.add(ack_in_flight)
        assert present_ids == sorted(present_ids)
        expected = sorted(set(payload_of) - acked)
        missing = sorted(set(expected) - set(present_ids))
        assert not missing, f"reported as queued but lost: {missing[:10]}"
        assert not acked & set(present_ids), "an acknowledged entry came back"
        # Anything not reported can only be the one append (or ack) the kill interrupted.
        unreported = [i for i in present_ids if i not in payload_of]
        assert len(unreported) <= 1
        assert all(i > max(payload_of) for i in unreported)
        for entry in present:
            if entry.id in payload_of:
                assert entry.payload.decode() == payload_of[entry.id]
            else:
                # Queued after all: from now on it is held to the same promise.
                payload_of[entry.id] = entry.payload.decode()
                next_n = int(entry.payload.decode().split()[1]) + 1
        # Nothing dropped: the bounds are far away.
        assert sum(box.dropped_total.values()) == 0
    assert len(payload_of) > sum(KILL_AFTER_LINES) // 2
