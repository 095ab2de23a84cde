"""The metric-name extraction the dashboard and rule checks rely on."""

from __future__ import annotations

import pytest

from tests.ops.contract import metric_names, unknown_metrics


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (outcome) (increase(gatewayd_jobs_total{kit=~"$kit"}[1h]))',
            {"gatewayd_jobs_total"},
        ),
        (
            "histogram_quantile(0.9, sum by (le) "
            '(rate(gatewayd_link_establish_duration_seconds_bucket{link="wan"}[$__rate_interval])))',
            {"gatewayd_link_establish_duration_seconds_bucket"},
        ),
        (
            "sum by (kit, reason) (increase(gatewayd_aborts_total[12h])) / on (kit) group_left "
            "sum by (kit) (increase(gatewayd_jobs_total[12h])) > 0.5",
            {"gatewayd_aborts_total", "gatewayd_jobs_total"},
        ),
        ('count(max by (kit) (up{job="gatewayd"}) == 0) or vector(0)', {"up"}),
        ("time() - gatewayd_build_info offset 5m > 1e3", {"gatewayd_build_info"}),
    ],
)
def test_finds_the_metrics_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_misspelt_metric_is_reported() -> None:
    assert unknown_metrics("rate(gatewayd_job_total[5m]) + gatewayd_jobs_total") == {
        "gatewayd_job_total"
    }


def test_histogram_series_are_known_but_other_suffixes_are_not() -> None:
    assert unknown_metrics("gatewayd_link_establish_duration_seconds_count") == set()
    assert unknown_metrics("gatewayd_jobs_total_bucket") == {"gatewayd_jobs_total_bucket"}
