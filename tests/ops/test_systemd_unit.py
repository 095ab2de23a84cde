"""systemd/gatewayd.service: `systemd-analyze verify` is clean,
`systemd-analyze security --offline=yes` scores it at most 1.5, and its limits, restart
policy and credential fit the daemon's own figures.

`verify` fails when the ExecStart binary does not exist, and the shipped unit names
/opt/gatewayd/bin/gatewayd, where the install instructions (systemd/README.md) put the
console script. So the tools run on a copy of the unit whose ExecStart is this venv's
own `gatewayd` console script, the same program at another path; everything else is the
shipped file byte for byte.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gatewayd.daemon.fd_limit import BASE, PER_HUB, needed
from gatewayd.daemon.service import main_run
from tests.ops.tools import REPO, require_tool, run_tool
from tests.ops.unit_file import read_unit

UNIT = REPO / "systemd" / "gatewayd.service"
INSTALLED_EXEC = "/opt/gatewayd/bin/gatewayd"
EXEC_START = f"{INSTALLED_EXEC} run --config /etc/gatewayd/kit.toml"
MAX_EXPOSURE = 1.5
# The daemon's own stop: up to 10 s for running jobs, then up to 10 s for the outbox.
DAEMON_STOP_BOUND_S = 20
# The daemon's resident memory target at 1,024 hubs (docs/benchmarks.md; it measured 69 MB).
RSS_TARGET_1024_HUBS = 150 * 1000**2
# Threads: the event loop's own, asyncio's default executor (Python caps it at 32 workers)
# and ExecReload's kill, which runs in the service's cgroup too.
MOST_TASKS = 1 + 32 + 1
# The systemd exit status of a credential that could not be loaded (systemd.exec(5)).
EXIT_CREDENTIALS = 243
CREDENTIAL = "mqtt-password"
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def _service() -> dict[str, list[str]]:
    return read_unit(UNIT)["Service"]


def _one(key: str) -> str:
    service = _service()
    assert key in service, f"{key}= is missing"
    values = service[key]
    assert len(values) == 1, f"{key}= given {len(values)} times"
    return values[0]


@pytest.fixture
def checkable_unit(tmp_path: Path) -> Path:
    """A copy of the unit, under its own name, whose ExecStart binary exists here."""
    console_script = Path(sys.executable).parent / "gatewayd"
    if not console_script.is_file():
        pytest.fail(f"{console_script} is missing: run ./dev.sh setup", pytrace=False)
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED_EXEC} ") == 1
    copy = tmp_path / "gatewayd.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED_EXEC} ", f"ExecStart={console_script} "))
    return copy


def test_exec_start_is_where_the_install_instructions_put_the_console_script() -> None:
    assert _one("ExecStart") == EXEC_START
    readme = (REPO / "systemd" / "README.md").read_text()
    assert "python3 -m venv /opt/gatewayd" in readme
    assert "/opt/gatewayd/bin/pip install" in readme


def test_lifecycle_settings() -> None:
    assert _one("Type") == "notify"
    assert _one("NotifyAccess") == "main"
    assert _one("WatchdogSec") == "30"
    assert _one("Restart") == "on-failure"
    assert _one("ExecReload") == "/bin/kill -HUP $MAINPID"
    timeout = _one("TimeoutStopSec")
    assert re.fullmatch(r"\d+", timeout), "TimeoutStopSec in plain seconds"
    # Comfortably above the daemon's own bound, so systemd never SIGKILLs a clean stop.
    assert int(timeout) >= DAEMON_STOP_BOUND_S + 15


def test_runs_unprivileged_with_serial_access_and_a_state_directory() -> None:
    assert _one("User") == "gatewayd"
    assert _one("Group") == "gatewayd"
    assert _one("SupplementaryGroups") == "dialout"
    assert _one("StateDirectory") == "gatewayd"
    assert _one("DevicePolicy") == "closed"
    assert set(_service()["DeviceAllow"]) == {"char-ttyUSB rw", "char-ttyACM rw"}
    assert _one("CapabilityBoundingSet") == ""
    assert _one("ProtectSystem") == "strict"


def test_the_open_file_limit_fits_1024_hubs_and_its_comment_shows_the_budget() -> None:
    limit = _one("LimitNOFILE")
    assert re.fullmatch(r"\d+", limit), "LimitNOFILE as one number, soft and hard alike"
    assert int(limit) >= 2 * needed(1024), "room to spare over 1,024 hubs"
    # The comment's arithmetic is the daemon's own (gatewayd/daemon/fd_limit.py).
    comment = " ".join(
        line.lstrip("# ") for line in UNIT.read_text().splitlines() if line.startswith("#")
    )
    assert f"each hub port takes {PER_HUB} descriptor" in comment
    assert f"{BASE} + {PER_HUB} x 1,024 = {needed(1024):,}" in comment


def test_memory_is_capped_well_above_what_1024_hubs_take() -> None:
    match = re.fullmatch(r"(\d+)([KMG]?)", _one("MemoryMax"))
    assert match, "MemoryMax as a size, not a percentage or infinity"
    limit = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    # Room for what memory may hold while the disk refuses writes, and the page cache.
    assert limit >= 3 * RSS_TARGET_1024_HUBS
    # A cap that could never bite would not save the kit from a leak.
    assert limit <= 1024**3


def test_tasks_are_capped_with_room_for_every_thread_the_daemon_starts() -> None:
    tasks = _one("TasksMax")
    assert re.fullmatch(r"\d+", tasks), "TasksMax as a number"
    assert 2 * MOST_TASKS <= int(tasks) <= 256


def test_a_bad_config_is_not_restarted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _one("Restart") == "on-failure"
    statuses = _one("RestartPreventExitStatus").split()
    assert statuses == ["2", str(EXIT_CREDENTIALS)]
    # The status gatewayd run exits with for a config it refuses, here a missing one.
    assert main_run(tmp_path / "kit.toml", log_level_forced=True) == int(statuses[0])
    assert "invalid kit config" in capsys.readouterr().err


def test_the_mqtt_password_comes_as_a_credential_the_example_config_names() -> None:
    name, source = _one("LoadCredential").split(":", 1)
    assert (name, source) == (CREDENTIAL, "/etc/gatewayd/mqtt-password")
    example = tomllib.loads((REPO / "examples" / "kit-mqtt.toml").read_text())
    assert example["mqtt"]["password_credential"] == CREDENTIAL
    # The install steps create the file the unit loads, readable by root alone.
    readme = (REPO / "systemd" / "README.md").read_text()
    assert f"sudo install -m 0600 -o root -g root /dev/null {source}" in readme


def test_serial_drivers_are_loaded_before_the_device_policy_applies() -> None:
    unit = read_unit(UNIT)["Unit"]
    for key in ("Wants", "After"):
        listed = " ".join(unit[key]).split()
        assert "modprobe@usbserial.service" in listed, key
        assert "modprobe@cdc_acm.service" in listed, key


def test_systemd_analyze_verify_is_clean(checkable_unit: Path) -> None:
    tool = require_tool("systemd-analyze")
    output = run_tool([tool, "verify", str(checkable_unit)])
    about_us = [line for line in output.splitlines() if "gatewayd" in line]
    assert about_us == []


def test_the_shipped_unit_fails_verify_only_for_its_missing_binary() -> None:
    # Proves the copy above differs from the shipped unit in nothing verify cares about.
    tool = require_tool("systemd-analyze")
    proc = subprocess.run(
        [tool, "verify", str(UNIT)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if Path(INSTALLED_EXEC).exists():
        assert proc.returncode == 0, lines
    else:
        assert lines, "verify should complain that the binary is missing"
        assert all(f"Command {INSTALLED_EXEC} is not executable" in line for line in lines), lines


def test_security_exposure_is_at_most_1_5(checkable_unit: Path) -> None:
    tool = require_tool("systemd-analyze")
    output = run_tool([tool, "security", "--offline=yes", str(checkable_unit)])
    match = re.search(r"Overall exposure level for gatewayd\.service: (\d+(?:\.\d+)?)", output)
    assert match, output
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, output
    # The tool's own gate agrees (its threshold is in tenths).
    run_tool([tool, "security", "--offline=yes", "--threshold=15", str(checkable_unit)])


def test_proc_stays_readable_for_the_process_metrics() -> None:
    # prometheus_client's process collector reads the boot time from /proc/stat and
    # exports no process_* metric without it; ProcSubset=pid hides that file.
    assert "ProcSubset" not in _service()
    assert _one("ProtectProc") == "invisible"
