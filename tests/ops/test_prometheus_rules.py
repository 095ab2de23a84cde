"""contrib/prometheus/alerts.yml: promtool accepts the rules and their unit tests pass.

Also checks that the unit tests would catch a broken alert (each alert's firing case
fails when its expression can no longer fire), and that the rules stay on the daemon's
metric names.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.contract import unknown_metrics
from tests.ops.tools import REPO, promtool_path, run_tool

PROM = REPO / "contrib" / "prometheus"
RULES = PROM / "alerts.yml"
RULE_TESTS = PROM / "alerts_test.yml"

REQUIRED_ALERTS = {
    "GatewaydKitDown",
    "GatewaydMqttBacklogGrowing",
    "GatewaydAbortRateHigh",
    "GatewaydSerialLinkFlapping",
    "GatewaydOutboxDropping",
}


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _rule_tests() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        cases.extend(group.get("alert_rule_test", []))
    return cases


def test_promtool_check_rules() -> None:
    output = run_tool([promtool_path(), "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(_alerts())} rules found" in output


def test_promtool_test_rules() -> None:
    # promtool resolves rule_files relative to the test file.
    output = run_tool([promtool_path(), "test", "rules", str(RULE_TESTS)])
    assert "SUCCESS" in output


def test_the_required_alerts_exist() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_alert_has_for_severity_and_a_next_step(rule: dict[str, Any]) -> None:
    assert "for" in rule
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()
    assert "Next step" in rule["annotations"]["description"]


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_alert_uses_only_metrics_gatewayd_exports(rule: dict[str, Any]) -> None:
    assert unknown_metrics(rule["expr"]) == set()


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_tested_firing_and_not_firing(rule: dict[str, Any]) -> None:
    cases = [case for case in _rule_tests() if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), "no test where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no test where it stays quiet"


@pytest.mark.parametrize("alert", sorted(rule["alert"] for rule in _alerts()))
def test_unit_tests_fail_when_an_alert_cannot_fire(alert: str, tmp_path: Path) -> None:
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) < 0"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    # Only the test groups about this alert, which keeps each run short.
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["tests"] = [
        group
        for group in tests["tests"]
        if any(case["alertname"] == alert for case in group.get("alert_rule_test", []))
    ]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests))
    args = [promtool_path(), "test", "rules", str(tmp_path / "alerts_test.yml")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert f"alertname: {alert}," in proc.stdout + proc.stderr
