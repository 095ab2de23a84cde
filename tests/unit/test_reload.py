"""SIGHUP's config reload: live keys apply, restart-only keys are kept and named, and a bad
file changes nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gatewayd.config.kit import load_kit_config
from gatewayd.config.reload import reload_kit_config

BASE = """
[hub]
port = "/dev/ttyUSB0"
[wan]
deadline_s = 1800
[log]
level = "info"
"""


@pytest.fixture(autouse=True)
def _keep_root_level() -> object:
    root = logging.getLogger()
    level = root.level
    yield None
    root.setLevel(level)


def test_live_keys_apply(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(BASE)
    current = load_kit_config(path)
    path.write_text(BASE.replace("1800", "900").replace('"info"', '"debug"'))
    with caplog.at_level(logging.INFO, logger="gatewayd.config.reload"):
        out = reload_kit_config(current, path)
    assert out.kit is not None and out.kit.wan.deadline_s == 900
    assert out.changed == ("wan", "log") and out.needs_restart == ()
    assert out.config_bytes == path.read_bytes()
    assert logging.getLogger().level == logging.DEBUG
    assert "changed=wan,log" in caplog.text


def test_restart_only_keys_are_kept_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(BASE)
    current = load_kit_config(path)
    path.write_text(
        BASE.replace("/dev/ttyUSB0", "/dev/ttyUSB1").replace("1800", "600")
        + '[metrics]\nlisten = "127.0.0.1:9999"\n'
    )
    out = reload_kit_config(current, path)
    assert out.kit is not None
    assert out.needs_restart == ("hub", "metrics")
    assert out.kit.all_hubs[0].port == "/dev/ttyUSB0"
    assert out.kit.metrics.listen == "127.0.0.1:9477"
    assert out.kit.wan.deadline_s == 600
    assert "change only on a restart keys=hub,metrics" in caplog.text


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (BASE.replace("1800", "-1"), "wan.deadline_s"),
        (BASE + "[wan\n", "invalid TOML"),
        (BASE + "a = " + "[" * 100_000, "invalid TOML: arrays or inline tables nest too deeply"),
        (BASE + "bogus = 1\n", "bogus: unknown key"),
    ],
)
def test_a_bad_file_is_refused_with_its_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, named: str
) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(BASE)
    current = load_kit_config(path)
    path.write_text(text)
    out = reload_kit_config(current, path)
    assert out.kit is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and named in errors[0].getMessage()
    assert str(path) in errors[0].getMessage()


def test_a_vanished_file_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "kit.toml"
    path.write_text(BASE)
    current = load_kit_config(path)
    path.unlink()
    assert reload_kit_config(current, path).kit is None
    assert "refused" in caplog.text
