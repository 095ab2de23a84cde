"""Every log call in the code base writes ``words key=value ...``: the event's words first,
then only key=value pairs, so the key=value formatter turns each into a clean logfmt line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    p for d in ("gatewayd", "drivers", "hw-fixtures") for p in (ROOT / d).rglob("*.py")
)
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}
FIRST_KEY = re.compile(r"(?:^|\s)[A-Za-z_][\w.]*=")
PAIRS = re.compile(r"^(?:\s*[A-Za-z_][\w.]*=\S+)*\s*$")


def log_formats(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in {"_log", "log", "logger"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_log_calls_end_in_key_value_pairs(path: Path) -> None:
    for line, fmt in log_formats(path):
        m = FIRST_KEY.search(fmt)
        if m is None:
            continue
        tail = fmt[m.start() :]
        assert PAIRS.match(tail), f"{path.name}:{line}: words after key=value in {fmt!r}"


def test_the_scan_sees_the_daemon_log_calls() -> None:
    formats = [f for _, f in log_formats(ROOT / "gatewayd" / "daemon" / "jobs.py")]
    assert "job started job=%s hub=%s" in formats
