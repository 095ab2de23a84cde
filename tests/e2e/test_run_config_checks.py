"""`gatewayd run` at start: a weak setting is logged, a file nested too deeply is refused.

The daemon runs as systemd runs it, with a notify socket. No broker listens: READY does not
wait for one, and the link keeps retrying a closed loopback port in the background.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

READY_TIMEOUT_S = 120.0


def test_run_logs_a_weak_setting_at_start(tmp_path: Path) -> None:
    kit = tmp_path / "kit.toml"
    kit.write_text(
        f'[hub]\nname = "hub1"\nport = "{tmp_path / "no-such-port"}"\n'
        '[metrics]\nlisten = "127.0.0.1:0"\n'
        f'[mqtt]\nkit_id = "kit-1"\nhost = "127.0.0.1"\nport = 1\nstate_dir = "{tmp_path / "s"}"\n'
        "[mqtt.tls]\ninsecure = true\n"
    )
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(READY_TIMEOUT_S)
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = str(tmp_path / "notify.sock")
    log = tmp_path / "stdout.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatewayd", "run", "--config", str(kit)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            while "READY=1" not in notify.recv(4096).decode().split("\n"):
                pass
        finally:
            proc.terminate()
            proc.wait(60)
            notify.close()
    lines = [line for line in log.read_text().splitlines() if 'msg="weak setting"' in line]
    assert len(lines) == 1, log.read_text()
    assert "level=warning logger=gatewayd.daemon.service" in lines[0]
    assert f" file={kit} key=mqtt.tls.insecure " in lines[0]
    assert (
        'problem="the kit does not check that the broker\'s certificate is for 127.0.0.1"'
    ) in lines[0]
    assert 'why="any certificate from any CA the system trusts passes' in lines[0]
    assert 'instead="remove it, and give the broker a certificate for 127.0.0.1"' in lines[0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a = " + "[" * 100_000, "arrays or inline tables nest too deeply"),
        ("a = " + "{b = " * 100_000, "arrays or inline tables nest too deeply"),
        (
            "[" + ".".join(["a"] * 100_000) + "]\n",
            "line 1 has 99999 dots, more than the 100 a line may have: its keys nest too deeply",
        ),
    ],
    ids=["arrays", "inline-tables", "table-header"],
)
def test_run_refuses_a_config_nested_too_deeply(tmp_path: Path, text: str, reason: str) -> None:
    kit = tmp_path / "kit.toml"
    kit.write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "gatewayd", "run", "--config", str(kit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr == (
        f"gatewayd run: invalid kit config:\n{kit}: (top level): invalid TOML: {reason}\n"
    )
