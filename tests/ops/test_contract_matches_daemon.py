"""The metric names the dashboard and the alert rules are checked against are the names
the daemon really exports: a scrape of its registry is compared with tests/ops/contract.py."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gatewayd.daemon.metrics import HubReading, KitReading, Metrics
from gatewayd_drivers.commshub.client import HubClientStats
from tests.ops.contract import HISTOGRAMS, METRICS


def _exported() -> set[str]:
    def read() -> KitReading:
        hub = HubReading(name="hub", stats=HubClientStats(connected=True), wan_rssi_dbm=-71)
        return KitReading(
            hubs=(hub,),
            mqtt_connected=True,
            mqtt_session_takeovers=0,
            outbox_depth=0,
            outbox_oldest_age_s=0.0,
            outbox_dropped={"count": 0, "bytes": 0, "age": 0},
            jobs_running=0,
        )

    text = generate_latest(Metrics(read=read).registry).decode()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("gatewayd_")
    }


def test_every_contract_metric_is_exported() -> None:
    exported = _exported()
    for name in METRICS - {"up"}:
        wanted = f"{name}_bucket" if name in HISTOGRAMS else name
        assert wanted in exported, name


def test_every_exported_metric_is_in_the_contract() -> None:
    known = set(METRICS)
    for name in HISTOGRAMS:
        known |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    # prometheus_client adds a _created sample to counters and histograms.
    unlisted = {name for name in _exported() if not name.endswith("_created")} - known
    assert unlisted == set()
