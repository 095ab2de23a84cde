"""Finding and running the external tools the operations checks need (promtool, systemd-analyze).

A missing tool skips the test on a developer's machine, but fails it under CI (CI=true):
CI must prove the files with the real tools, so a missing one is a broken set-up, not a
reason to pass. `.ci/ops-tools` installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Where Debian puts the tools, for shells whose PATH lacks /usr/sbin and the like.
_FALLBACK_DIRS = (Path("/usr/bin"), Path("/usr/sbin"), Path("/bin"), Path("/sbin"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_tool(name: str) -> str | None:
    """The tool's path, or None when it is not installed."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _FALLBACK_DIRS:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tool(name: str) -> str:
    """The tool's path; otherwise fails the test under CI and skips it elsewhere."""
    path = find_tool(name)
    if path is not None:
        return path
    message = f"{name} is not installed: run .ci/ops-tools to install it"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def promtool_path() -> str:
    return require_tool("promtool")


def run_tool(args: list[str], *, cwd: Path | None = None, timeout: float = 60) -> str:
    """Runs a tool and returns its combined output; a non-zero exit fails the test with it."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}:\n{output}",
            pytrace=False,
        )
    return output
