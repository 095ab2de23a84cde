"""contrib/grafana/gatewayd-fleet.json: a dashboard Grafana can import, whose queries are
valid PromQL on the daemon's metric names and follow the kit selector."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.contract import metric_names, unknown_metrics
from tests.ops.tools import REPO, promtool_path, run_tool

DASHBOARD = REPO / "contrib" / "grafana" / "gatewayd-fleet.json"

# What the fleet dashboard must show (the histogram through its buckets).
REQUIRED_METRICS = {
    "up",
    "gatewayd_build_info",
    "gatewayd_jobs_total",
    "gatewayd_aborts_total",
    "gatewayd_probe_attempts_total",
    "gatewayd_link_establish_duration_seconds_bucket",
    "gatewayd_mqtt_connected",
    "gatewayd_outbox_messages",
    "gatewayd_outbox_oldest_message_age_seconds",
    "gatewayd_outbox_dropped_total",
    "gatewayd_serial_reconnects_total",
    "gatewayd_serial_errors_total",
    "gatewayd_hub_wan_rssi_dbm",
}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _queries() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def _variables() -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in _dashboard()["templating"]["list"]}


def test_is_a_current_dashboard() -> None:
    dashboard = _dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]


def test_datasource_is_a_prometheus_variable() -> None:
    var = _variables()["datasource"]
    assert var["type"] == "datasource"
    assert var["query"] == "prometheus"


def test_kit_variable_lists_the_fleet_with_all_and_multi() -> None:
    var = _variables()["kit"]
    assert var["type"] == "query"
    assert var["definition"] == "label_values(gatewayd_build_info, kit)"
    assert var["query"]["query"] == var["definition"]
    assert var["includeAll"] is True
    assert var["multi"] is True
    assert var["datasource"]["uid"] == "${datasource}"


def test_every_panel_queries_through_the_datasource_variable() -> None:
    for panel in _panels(_dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    panels = list(_panels(_dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize(("title", "expr"), _queries(), ids=[t for t, _ in _queries()])
def test_query_uses_only_metrics_gatewayd_exports(title: str, expr: str) -> None:
    assert metric_names(expr), f"{title}: no metric found in {expr!r}"
    assert unknown_metrics(expr) == set(), title


@pytest.mark.parametrize(("title", "expr"), _queries(), ids=[t for t, _ in _queries()])
def test_query_follows_the_kit_selector(title: str, expr: str) -> None:
    # Every selector of the query, not just one of them, is narrowed to the chosen kits.
    selectors = expr.count("{")
    assert selectors > 0, title
    assert expr.count('kit=~"$kit"') == selectors, f"{title}: {expr}"


def test_shows_everything_the_fleet_needs() -> None:
    used = set().union(*(metric_names(expr) for _, expr in _queries()))
    assert used >= REQUIRED_METRICS, REQUIRED_METRICS - used


def test_establishment_quantiles_come_from_the_buckets() -> None:
    quantiles = [expr for _, expr in _queries() if "histogram_quantile" in expr]
    for link in ("wan", "han"):
        mine = [expr for expr in quantiles if f'link="{link}"' in expr]
        assert mine, link
        for expr in mine:
            assert "gatewayd_link_establish_duration_seconds_bucket" in expr
            assert "by (le)" in expr


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no PromQL parser command in 2.42; it parses rule expressions, so each
    # query becomes a recording rule, with Grafana's variables replaced by what Grafana
    # would send.
    rules = [
        {
            "record": f"gatewayd_dashboard:query_{number}",
            "expr": expr.replace("$kit", ".*").replace("$__rate_interval", "2m"),
        }
        for number, (_, expr) in enumerate(_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_tool([promtool_path(), "check", "rules", str(path)])
    assert f"SUCCESS: {len(rules)} rules found" in output
