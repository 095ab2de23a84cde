"""`gatewayd run` fits its descriptor limit to its hubs, or says how many the limit allows."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from gatewayd.daemon.fd_limit import BASE, PER_HUB, hubs_allowed, needed


def kit_with_hubs(tmp_path: Path, hubs: int) -> Path:
    text = f'[mqtt]\nkit_id = "kit-1"\nhost = "127.0.0.1"\nport = 1\nstate_dir = "{tmp_path}/s"\n'
    for i in range(hubs):
        text += f'\n[[hubs]]\nname = "hub-{i}"\nport = "{tmp_path}/hub-{i}"\n'
    path = tmp_path / "kit.toml"
    path.write_text(text)
    return path


def test_the_budget_arithmetic() -> None:
    # One descriptor per hub port (tests/integration/test_serial_link_io.py counts them).
    assert needed(1024) == BASE + PER_HUB * 1024 == 1088
    assert hubs_allowed(1024) == (1024 - BASE) // PER_HUB == 960
    assert hubs_allowed(needed(300)) == 300


def test_a_limit_too_low_for_the_hubs_is_a_clear_error(tmp_path: Path) -> None:
    kit = kit_with_hubs(tmp_path, 1000)  # 1,000 hubs need 1,064 descriptors

    def low_hard_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 1024))

    done = subprocess.run(
        [sys.executable, "-m", "gatewayd", "run", "--config", str(kit)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low_hard_limit,
    )
    assert done.returncode == 1, done.stderr
    assert "the open-file limit (1024) allows at most 960 hub(s)" in done.stderr
    assert "this config has 1000" in done.stderr and "LimitNOFILE=" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_soft_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    probe = (
        "import resource\n"
        "from gatewayd.daemon.fd_limit import raise_open_file_limit\n"
        "assert raise_open_file_limit(100) is None\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low_soft_limit,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "4096"
