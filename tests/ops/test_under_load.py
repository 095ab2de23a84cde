"""tests/under_load.sh: hogs run beside the command, its exit status is kept, none outlives it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.ops.tools import REPO

SCRIPT = REPO / "tests" / "under_load.sh"


def run_under_load(*command: str) -> tuple[int, list[int], str]:
    env = {**os.environ, "GATEWAYD_LOAD_HOGS": "2", "GATEWAYD_HOG_PYTHON": sys.executable}
    done = subprocess.run(
        [str(SCRIPT), *command], capture_output=True, text=True, timeout=60, env=env
    )
    said = re.search(r"under_load: 2 CPU hogs running \(pids ([0-9 ]+)\)", done.stderr)
    assert said is not None, done.stderr
    return done.returncode, [int(pid) for pid in said.group(1).split()], done.stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_command_runs_beside_the_hogs_and_none_outlives_it() -> None:
    # The command lists its siblings, the script's children: the hogs are among them.
    code, hogs, out = run_under_load("sh", "-c", 'pgrep -P "$PPID"')
    assert code == 0
    assert set(hogs) <= {int(pid) for pid in out.split()}
    assert not any(alive(pid) for pid in hogs)


def test_a_failing_command_keeps_its_exit_status_and_still_stops_the_hogs() -> None:
    code, hogs, _ = run_under_load("sh", "-c", "exit 3")
    assert code == 3
    assert not any(alive(pid) for pid in hogs)


def test_the_script_is_strict_and_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)
    assert "set -euo pipefail" in SCRIPT.read_text()
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)
