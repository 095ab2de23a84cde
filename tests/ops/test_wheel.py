"""The wheel installs packages with the project's own names, the licence, and no demo broker.

Builds the real wheel from a copy of the sources (so the build leaves nothing in the work
tree) and reads what it would put into site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "gatewayd", "drivers", "hw-fixtures")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("gatewayd-*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (info,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return info


@pytest.mark.timeout(600)
def test_top_level_names_are_the_projects_own(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist()} - {_dist_info(wheel)}
    assert tops == {"gatewayd", "gatewayd_drivers", "gatewayd_sim"}
    assert wheel.read(f"{_dist_info(wheel)}/top_level.txt").decode().split() == sorted(tops)


@pytest.mark.timeout(600)
def test_the_licence_ships_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    licences = [n for n in wheel.namelist() if n.startswith(_dist_info(wheel)) and "LICENSE" in n]
    assert licences, wheel.namelist()
    assert b"Apache License" in wheel.read(licences[0])
    meta = Parser().parsestr(wheel.read(f"{_dist_info(wheel)}/METADATA").decode())
    assert meta["License-Expression"] == "Apache-2.0"


@pytest.mark.timeout(600)
def test_amqtt_is_only_in_the_demo_extra(wheel: zipfile.ZipFile) -> None:
    meta = Parser().parsestr(wheel.read(f"{_dist_info(wheel)}/METADATA").decode())
    requires = meta.get_all("Requires-Dist") or []
    amqtt = [r for r in requires if r.lower().startswith("amqtt")]
    assert amqtt, requires
    assert all('extra == "demo"' in r for r in amqtt), amqtt
    assert "demo" in (meta.get_all("Provides-Extra") or [])


@pytest.mark.timeout(600)
def test_the_data_files_the_code_opens_ship_too(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for needed in (
        "gatewayd/engine/meter_arrangements.toml",
        "gatewayd_sim/scenarios/quick.toml",
        "gatewayd_sim/meters/polyphase.toml",
        "gatewayd_sim/znp/scenarios/site_good.toml",
    ):
        assert needed in names
