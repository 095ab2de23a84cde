"""`gatewayd run` reaches READY without what only a job, a request or a survey needs.

The daemon runs as systemd runs it, with a notify socket, under ``python -X importtime``: the
modules it imported by the time READY arrives are its start. No broker listens and the hub's
port does not exist, which READY does not wait for (the link and the port are retried in the
background). ``bench/startup.py`` times the same start; this holds what made it fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

# Loaded at a job, a request, a DCC notice, a survey, a meter reading or another command, never
# to start.
LATER = (
    "gatewayd.contract.requests",
    "gatewayd.contract.dcc_notice",
    "gatewayd.contract.survey",
    "gatewayd.contract.channels",
    "gatewayd.contract.schema_export",
    "gatewayd.engine.commissioning",
    "gatewayd.engine.probes",
    "gatewayd.engine.optical_check",
    "gatewayd.engine.meter_arrangement",
    "gatewayd.survey",
    "gatewayd_drivers.znp",
    "gatewayd_drivers.iec62056.readout",
    "gatewayd_drivers.iec62056.reader",
    "gatewayd_sim",
    "gatewayd.demo",
    # The other verbs of the command line: only the one that runs is imported.
    "gatewayd.cli.check_config",
    "gatewayd.cli.demo",
    "gatewayd.cli.hub_status",
    "gatewayd.cli.probe",
    "gatewayd.cli.read_meter",
    "gatewayd.cli.sim",
    "gatewayd.cli.survey",
    "rich",
    "amqtt",
)


_IMPORTTIME = (sys.executable, "-X", "importtime")


def _kit(tmp_path: Path) -> Path:
    kit = tmp_path / "kit.toml"
    kit.write_text(
        f'[hub]\nname = "hub1"\nport = "{tmp_path / "no-such-port"}"\n'
        '[metrics]\nlisten = "127.0.0.1:0"\n'
        f'[mqtt]\nkit_id = "kit-1"\nhost = "127.0.0.1"\nport = 1\nstate_dir = "{tmp_path / "s"}"\n'
    )
    return kit


def _imported(importtime: str) -> list[str]:
    rows = [line.split("|") for line in importtime.splitlines() if line.startswith("import time:")]
    return [row[-1].strip() for row in rows if len(row) == 3 and "imported package" not in row[-1]]


def test_run_is_ready_without_the_modules_of_jobs_requests_and_surveys(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(60)
    # A file, not a pipe: nobody reads a pipe while the daemon starts, and a full one would
    # stop it before READY.
    stderr = tmp_path / "importtime.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [*_IMPORTTIME, "-m", "gatewayd", "run", "--config", str(_kit(tmp_path))],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            while True:
                message = notify.recv(4096).decode()
                if "READY=1" in message.split("\n"):
                    break
        finally:
            proc.kill()
            proc.wait(30)
            notify.close()
    imported = _imported(stderr.read_text())
    assert "gatewayd.daemon.service" in imported
    assert "gatewayd.contract.messages" in imported
    early = sorted(m for m in imported if m in LATER or m.startswith(tuple(f"{x}." for x in LATER)))
    assert early == []
