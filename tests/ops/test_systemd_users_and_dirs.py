"""systemd/sysusers.d and systemd/tmpfiles.d: applied with the real tools to a scratch
root, they make the gatewayd user in dialout and a config directory it can read."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.ops.tools import REPO, require_tool, run_tool

SYSUSERS = REPO / "systemd" / "sysusers.d" / "gatewayd.conf"
TMPFILES = REPO / "systemd" / "tmpfiles.d" / "gatewayd.conf"


def _scratch_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # The host's groups, so dialout is the one the system already has.
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    return root


def _entry(path: Path, name: str) -> list[str]:
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise AssertionError(f"{name} not in {path}")


def test_sysusers_makes_the_service_user_in_dialout(tmp_path: Path) -> None:
    tool = require_tool("systemd-sysusers")
    root = _scratch_root(tmp_path)
    run_tool([tool, f"--root={root}", str(SYSUSERS)])
    user = _entry(root / "etc" / "passwd", "gatewayd")
    assert user[5] == "/var/lib/gatewayd"
    assert user[6].endswith("nologin")
    assert int(user[2]) < 1000, "a system user"
    dialout = _entry(root / "etc" / "group", "dialout")
    assert "gatewayd" in dialout[3].split(",")


def test_tmpfiles_makes_a_config_directory_only_root_and_the_service_read(
    tmp_path: Path,
) -> None:
    sysusers = require_tool("systemd-sysusers")
    tmpfiles = require_tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to set the directory's owner")
    root = _scratch_root(tmp_path)
    run_tool([sysusers, f"--root={root}", str(SYSUSERS)])
    run_tool([tmpfiles, f"--root={root}", "--create", str(TMPFILES)])
    config_dir = root / "etc" / "gatewayd"
    info = config_dir.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert info.st_uid == 0
    assert info.st_gid == int(_entry(root / "etc" / "group", "gatewayd")[2])
