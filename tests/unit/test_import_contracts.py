"""The import-linter contracts in pyproject.toml hold, and each one can fail.

Each case copies the packages into a temporary tree, plants one import that the contract
forbids, and runs the real ``lint-imports`` on the copy: the contract must then be reported
broken, while the same copy without the plant keeps every contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gatewayd", "drivers/gatewayd_drivers", "hw-fixtures/gatewayd_sim")

# (contract id, module file to plant in, the planted line)
PLANTS = [
    ("drivers", "drivers/gatewayd_drivers/backoff.py", "import gatewayd.clock"),
    ("drivers", "drivers/gatewayd_drivers/commshub/crc.py", "import gatewayd_sim.pty"),
    ("pure-verdict", "gatewayd/engine/verdict.py", "import asyncio"),
    ("pure-verdict", "gatewayd/engine/outcomes.py", "from gatewayd import clock"),
    ("pure-verdict", "gatewayd/engine/outcomes.py", "import sqlite3"),
    ("pure-verdict", "gatewayd/engine/verdict.py", "import serialx"),
    ("engine", "gatewayd/engine/commissioning.py", "from gatewayd.daemon import outbox"),
    ("engine", "gatewayd/engine/result.py", "import aiomqtt"),
    ("engine", "gatewayd/engine/probes/wan.py", "from gatewayd.cli import terminal"),
    ("simulators", "gatewayd/daemon/publisher.py", "from gatewayd_sim.commshub import hub"),
    ("simulators", "gatewayd/cli/probe.py", "import gatewayd_sim.pty"),
    ("cli-on-top", "gatewayd/demo/run.py", "from gatewayd.cli import terminal"),
    ("cli-on-top", "gatewayd/config/kit.py", "import gatewayd.cli.main"),
]


def _config() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        cfg: dict[str, Any] = tomllib.load(f)["tool"]["importlinter"]
    return cfg


def _contracts() -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in _config()["contracts"]}


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed (pip install -e '.[test]' installs it)")
    return found


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the three packages and the config, to plant imports in."""
    dest = tmp_path_factory.mktemp("layers")
    for pkg in PACKAGES:
        shutil.copytree(
            ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def run_contracts(tree: Path, *contract_ids: str) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, ahead of the installed (editable) packages.
    path = os.pathsep.join(str(tree / d) for d in (".", "drivers", "hw-fixtures"))
    args = [_lint_imports(), "--config", "pyproject.toml", "--no-cache"]
    for cid in contract_ids:
        args += ["--contract", cid]
    return subprocess.run(
        args,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_as_it_is_keeps_every_contract(tree: Path) -> None:
    done = run_contracts(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    for contract in _contracts().values():
        assert f"{contract['name']} KEPT" in done.stdout


@pytest.mark.parametrize(("contract_id", "module", "line"), PLANTS)
def test_a_planted_import_breaks_its_contract(
    tree: Path, contract_id: str, module: str, line: str
) -> None:
    target = tree / module
    original = target.read_text()
    target.write_text(original + f"\n{line}  # planted by the test\n")
    try:
        done = run_contracts(tree, contract_id)
    finally:
        target.write_text(original)
    name = _contracts()[contract_id]["name"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{name} BROKEN" in done.stdout, done.stdout


def test_every_contract_is_shown_to_fail() -> None:
    assert {cid for cid, _, _ in PLANTS} == set(_contracts())


def test_nothing_but_the_cli_is_left_out_of_the_cli_contract() -> None:
    """A new part of gatewayd is held to 'nothing imports the CLI' without anyone adding it."""
    parts = {
        f"gatewayd.{p.stem}"
        for p in (ROOT / "gatewayd").iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    } - {"gatewayd.cli", "gatewayd.__init__", "gatewayd.__main__"}
    sources = set(_contracts()["cli-on-top"]["source_modules"])
    assert parts | {"gatewayd_drivers", "gatewayd_sim"} == sources
