"""A missing tool fails the operations checks under CI and only skips them elsewhere."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.ops.tools import REPO, require_tool

NO_SUCH_TOOL = "gatewayd-no-such-tool"


def test_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"run \.ci/ops-tools"):
        require_tool(NO_SUCH_TOOL)


def test_missing_tool_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"run \.ci/ops-tools"):
        require_tool(NO_SUCH_TOOL)


def test_the_installer_script_is_strict_and_executable() -> None:
    script = REPO / ".ci" / "ops-tools"
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
