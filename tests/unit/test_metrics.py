"""Metrics: the names, labels and values a scrape shows, checked in the exposition text
that Prometheus parses, with the job facts the verdict tests use."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gatewayd.config.job import Policy
from gatewayd.daemon.metrics import DURATION_BUCKETS_S, HubReading, KitReading, Metrics
from gatewayd.engine.meter_type import check_meter_type
from gatewayd.engine.outcomes import Cancelled, DeviceOutcome, HanOutcome, RunFacts, WanOutcome
from gatewayd.engine.verdict import decide
from gatewayd_drivers.commshub.client import HubClientStats
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import WanState
from tests.unit.test_verdict import ALL_VARIANTS, GSME, make_job


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def reading(**changes: object) -> KitReading:
    stats = HubClientStats(bytes_in=1200, bytes_out=300, frames_in=40, frames_out=12)
    stats.timeouts, stats.reconnects, stats.connected = 2, 1, True
    base = KitReading(
        hubs=(HubReading("hub-a", stats, -71), HubReading("hub-b", HubClientStats(), None)),
        mqtt_connected=True,
        mqtt_session_takeovers=0,
        outbox_depth=3,
        outbox_oldest_age_s=12.5,
        outbox_dropped={"count": 0, "bytes": 1, "age": 0},
        jobs_running=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def facts_up(policy: Policy = Policy.INSTALL_AND_LEAVE) -> RunFacts:
    job = make_job(policy)
    wan = WanOutcome(
        established=True,
        final_state=WanState.CONNECTED,
        deadline_s=1800,
        polls=3,
        time_to_connected_s=42.0,
    )
    devices = tuple(
        DeviceOutcome(
            eui64=d.eui64,
            type=d.type,
            required=d.required,
            probed=True,
            joined=True,
            attempts=1,
            seconds_to_join=15.0 + i,
        )
        for i, d in enumerate(job.devices)
    )
    return RunFacts(
        job=job,
        meter_type=check_meter_type(job, ALL_VARIANTS),
        wan=wan,
        han=HanOutcome(probed=True, devices=devices),
    )


def test_every_known_child_is_there_at_zero_before_any_job() -> None:
    m = Metrics()
    s = samples(m)
    for link in ("wan", "han"):
        for result in ("established", "not_established", "interrupted"):
            assert s[("gatewayd_probe_attempts_total", (("link", link), ("result", result)))] == 0
        assert s[("gatewayd_link_establish_duration_seconds_count", (("link", link),))] == 0
    for outcome in ("commissioned", "installed_no_wan", "aborted", "cancelled", "failed"):
        assert s[("gatewayd_jobs_total", (("outcome", outcome),))] == 0
    for reason in (
        "SMETS_METER_TYPE_NOT_AVAILABLE",
        "UNABLE_TO_ESTABLISH_WAN",
        "UNABLE_TO_ESTABLISH_HAN",
    ):
        assert s[("gatewayd_aborts_total", (("reason", reason),))] == 0
    info = [k for k in s if k[0] == "gatewayd_build_info"]
    assert len(info) == 1 and dict(info[0][1])["version"]


def test_durations_are_seconds_with_buckets_from_a_second_to_an_hour() -> None:
    assert DURATION_BUCKETS_S[0] == 1 and DURATION_BUCKETS_S[-1] == 3600
    m = Metrics()
    m.record_job(facts_up(), decide(facts_up()))
    assert value(m, "gatewayd_link_establish_duration_seconds_sum", link="wan") == 42.0
    assert value(m, "gatewayd_link_establish_duration_seconds_bucket", link="wan", le="30.0") == 0
    assert value(m, "gatewayd_link_establish_duration_seconds_bucket", link="wan", le="60.0") == 1
    # HAN is up when the last *required* device joined (ESME 15 s, GSME 16 s; the IHD, at
    # 17 s, is not required by default).
    assert value(m, "gatewayd_link_establish_duration_seconds_sum", link="han") == 16.0


def test_a_commissioned_job_counts_its_outcome_and_both_links() -> None:
    m = Metrics()
    facts = facts_up()
    m.record_job(facts, decide(facts))
    assert value(m, "gatewayd_jobs_total", outcome="commissioned") == 1
    assert value(m, "gatewayd_probe_attempts_total", link="wan", result="established") == 1
    assert value(m, "gatewayd_probe_attempts_total", link="han", result="established") == 1


def test_an_abort_counts_under_its_smets_reason() -> None:
    m = Metrics()
    facts = facts_up()
    assert facts.han is not None
    gsme = Eui64.parse(GSME)
    devices = tuple(
        replace(d, joined=False, seconds_to_join=None, attempts=3) if d.eui64 == gsme else d
        for d in facts.han.devices
    )
    facts = replace(facts, han=HanOutcome(probed=True, devices=devices))
    verdict = decide(facts)
    m.record_job(facts, verdict)
    assert value(m, "gatewayd_jobs_total", outcome="aborted") == 1
    assert value(m, "gatewayd_aborts_total", reason="UNABLE_TO_ESTABLISH_HAN") == 1
    assert value(m, "gatewayd_probe_attempts_total", link="han", result="not_established") == 1
    assert value(m, "gatewayd_link_establish_duration_seconds_count", link="han") == 0


def test_no_wan_under_abort_policy_and_a_cancelled_job() -> None:
    m = Metrics()
    job = make_job(Policy.ABORT_ON_NO_WAN)
    no_wan = WanOutcome(established=False, final_state=WanState.SEARCHING, deadline_s=1800)
    facts = RunFacts(job=job, meter_type=check_meter_type(job, ALL_VARIANTS), wan=no_wan)
    m.record_job(facts, decide(facts))
    cancelled = replace(facts, ending=Cancelled("installer"))
    m.record_job(cancelled, decide(cancelled))
    assert value(m, "gatewayd_aborts_total", reason="UNABLE_TO_ESTABLISH_WAN") == 1
    assert value(m, "gatewayd_jobs_total", outcome="cancelled") == 1
    assert value(m, "gatewayd_probe_attempts_total", link="wan", result="not_established") == 1
    assert value(m, "gatewayd_probe_attempts_total", link="wan", result="interrupted") == 1


def test_live_figures_are_read_at_scrape_time_by_hub_name() -> None:
    current = [reading()]
    m = Metrics(read=lambda: current[0])
    assert value(m, "gatewayd_serial_bytes_total", hub="hub-a", direction="rx") == 1200
    assert value(m, "gatewayd_serial_bytes_total", hub="hub-a", direction="tx") == 300
    assert value(m, "gatewayd_serial_frames_total", hub="hub-a", direction="rx") == 40
    assert value(m, "gatewayd_serial_errors_total", hub="hub-a", kind="timeout") == 2
    assert value(m, "gatewayd_serial_reconnects_total", hub="hub-a") == 1
    assert value(m, "gatewayd_serial_connected", hub="hub-a") == 1
    assert value(m, "gatewayd_serial_connected", hub="hub-b") == 0
    assert value(m, "gatewayd_hub_wan_rssi_dbm", hub="hub-a") == -71
    assert value(m, "gatewayd_hub_wan_rssi_dbm", hub="hub-b") is None  # not known yet
    assert value(m, "gatewayd_mqtt_connected") == 1
    assert value(m, "gatewayd_outbox_messages") == 3
    assert value(m, "gatewayd_outbox_oldest_message_age_seconds") == 12.5
    assert value(m, "gatewayd_outbox_dropped_total", reason="bytes") == 1
    assert value(m, "gatewayd_jobs_running") == 1
    current[0] = reading(mqtt_connected=False, outbox_depth=0)
    assert value(m, "gatewayd_mqtt_connected") == 0
    assert value(m, "gatewayd_outbox_messages") == 0


def test_no_label_holds_a_device_path() -> None:
    m = Metrics(read=reading)
    for _name, labels in samples(m):
        for _key, v in labels:
            assert "/dev/" not in v
