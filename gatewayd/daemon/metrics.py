"""Prometheus metrics: what a fleet operator watches on every kit.

End of the flow, beside MQTT: job results and probe outcomes are *recorded* here when
a job ends (``record_job``); the live figures the daemon already keeps (serial counters,
the outbox, the MQTT link, the hub's last WAN signal) are *read* at scrape time by a
collector, so there is one source of truth and nothing to keep in step.

Naming follows Prometheus practice: base units (seconds), ``_total`` counters, and no
IDs as labels. Hubs are labelled by their configured short name, never by device path
(``/dev/serial/by-id/...`` holds serial numbers). Every labelled child that can be known
in advance is created at zero so ``rate()`` and alerts see a series from the first scrape.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gatewayd import __version__
from gatewayd.daemon.supervisor import Task
from gatewayd.engine.outcomes import RunFacts
from gatewayd.engine.verdict import AbortCode, Outcome, Verdict
from gatewayd_drivers.commshub.client import HubClientStats

__all__ = [
    "DURATION_BUCKETS_S",
    "MEMORY_DROPS",
    "HubReading",
    "KitReading",
    "Metrics",
    "ProbeResult",
]

# WAN attach takes from seconds (a strong signal) to the hour a deadline allows; HAN joins
# take seconds to a few join windows of minutes. One set of buckets serves both links.
DURATION_BUCKETS_S = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600)

LINKS = ("wan", "han")

# The ``reason`` of events dropped from memory while the disk refused writes (the other
# reasons are the outbox's own bounds).
MEMORY_DROPS = "memory"


class ProbeResult:
    ESTABLISHED = "established"
    NOT_ESTABLISHED = "not_established"
    INTERRUPTED = "interrupted"  # a DCC notice, a cancellation or a kit failure stopped it

    ALL = (ESTABLISHED, NOT_ESTABLISHED, INTERRUPTED)


@dataclass(frozen=True, slots=True)
class HubReading:
    """One hub's live figures, as the daemon holds them at scrape time."""

    name: str
    stats: HubClientStats
    wan_rssi_dbm: int | None


@dataclass(frozen=True, slots=True)
class KitReading:
    """The daemon's live figures at scrape time."""

    hubs: tuple[HubReading, ...]
    mqtt_connected: bool
    mqtt_session_takeovers: int
    outbox_depth: int
    outbox_oldest_age_s: float
    outbox_dropped: Mapping[str, int]
    jobs_running: int
    outbox_memory_messages: int = 0


class _LiveCollector(Collector):
    """Reads the daemon's own counters when Prometheus scrapes."""

    def __init__(self, read: Callable[[], KitReading]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        kit = self._read()
        yield from _hub_families(kit.hubs)
        yield _gauge(
            "gatewayd_mqtt_connected", "1 when connected to the MQTT broker", kit.mqtt_connected
        )
        yield CounterMetricFamily(
            "gatewayd_mqtt_session_takeovers",
            "Connections the broker closed because another client took this kit's client id",
            value=kit.mqtt_session_takeovers,
        )
        yield _gauge(
            "gatewayd_outbox_messages",
            "Messages queued on disk that the broker has not acknowledged yet",
            kit.outbox_depth,
        )
        yield _gauge(
            "gatewayd_outbox_oldest_message_age_seconds",
            "Age of the oldest queued message (0 when the outbox is empty)",
            kit.outbox_oldest_age_s,
        )
        yield _gauge(
            "gatewayd_outbox_memory_messages",
            "Messages held in memory because the disk refused them (lost if the daemon stops)",
            kit.outbox_memory_messages,
        )
        dropped = CounterMetricFamily(
            "gatewayd_outbox_dropped",
            "Queued messages an outbox bound dropped, by the bound",
            labels=["reason"],
        )
        for reason, n in sorted({MEMORY_DROPS: 0, **kit.outbox_dropped}.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield _gauge("gatewayd_jobs_running", "Commissioning jobs running now", kit.jobs_running)

    def describe(self) -> Iterable[Metric]:
        # Describing by collecting would read the daemon at registration; an empty
        # description is allowed and skips the duplicate-name check for these families.
        return []


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _hub_families(hubs: tuple[HubReading, ...]) -> Iterator[Metric]:
    labels = ["hub"]
    bytes_ = CounterMetricFamily(
        "gatewayd_serial_bytes", "Bytes on a hub's serial link", labels=[*labels, "direction"]
    )
    frames = CounterMetricFamily(
        "gatewayd_serial_frames", "LSP frames on a hub's serial link", labels=[*labels, "direction"]
    )
    errors = CounterMetricFamily(
        "gatewayd_serial_errors",
        "Errors on a hub's serial link: bad frames, short payloads, unanswered requests, "
        "port failures",
        labels=[*labels, "kind"],
    )
    reconnects = CounterMetricFamily(
        "gatewayd_serial_reconnects", "Times a hub's port was reopened after a loss", labels=labels
    )
    connected = GaugeMetricFamily(
        "gatewayd_serial_connected", "1 while the hub's serial port is open", labels=labels
    )
    rssi = GaugeMetricFamily(
        "gatewayd_hub_wan_rssi_dbm",
        "The WAN signal strength the hub last reported, in dBm",
        labels=labels,
    )
    for hub in hubs:
        s = hub.stats
        bytes_.add_metric([hub.name, "rx"], s.bytes_in)
        bytes_.add_metric([hub.name, "tx"], s.bytes_out)
        frames.add_metric([hub.name, "rx"], s.frames_in)
        frames.add_metric([hub.name, "tx"], s.frames_out)
        errors.add_metric([hub.name, "frame"], s.frame_errors)
        errors.add_metric([hub.name, "malformed"], s.malformed)
        errors.add_metric([hub.name, "timeout"], s.timeouts)
        errors.add_metric([hub.name, "link"], s.link_errors)
        reconnects.add_metric([hub.name], s.reconnects)
        connected.add_metric([hub.name], 1.0 if s.connected else 0.0)
        if hub.wan_rssi_dbm is not None:
            rssi.add_metric([hub.name], float(hub.wan_rssi_dbm))
    yield from (bytes_, frames, errors, reconnects, connected, rssi)


class Metrics:
    """The kit's metrics registry. ``read`` supplies the live figures at scrape time."""

    def __init__(self, read: Callable[[], KitReading] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("gatewayd_build", "The running gatewayd build", registry=r).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        self.probe_attempts = Counter(
            "gatewayd_probe_attempts",
            "WAN and HAN probe stages run, by link and how they ended",
            ["link", "result"],
            registry=r,
        )
        self.establish_seconds = Histogram(
            "gatewayd_link_establish_duration_seconds",
            "Site seconds from the start of a probe stage until its link was established",
            ["link"],
            buckets=DURATION_BUCKETS_S,
            registry=r,
        )
        self.jobs = Counter(
            "gatewayd_jobs", "Commissioning jobs finished, by outcome", ["outcome"], registry=r
        )
        self.aborts = Counter(
            "gatewayd_aborts", "Jobs aborted, by SMETS abort reason", ["reason"], registry=r
        )
        self.task_failures = Counter(
            "gatewayd_task_failures",
            "Failures of a background task, each followed by a restart after a backoff",
            ["task"],
            registry=r,
        )
        for link in LINKS:
            self.establish_seconds.labels(link)
            for result in ProbeResult.ALL:
                self.probe_attempts.labels(link, result)
        for outcome in Outcome:
            self.jobs.labels(outcome.value)
        for code in AbortCode:
            self.aborts.labels(code.value)
        for task in Task:
            self.task_failures.labels(task.value)
        ProcessCollector(registry=r)
        if read is not None:
            r.register(_LiveCollector(read))

    def record_job(self, facts: RunFacts, verdict: Verdict) -> None:
        """Count a finished job: its outcome, its abort reason, and each probe stage it ran."""
        self.jobs.labels(verdict.outcome.value).inc()
        if verdict.abort is not None:
            self.aborts.labels(verdict.abort.code.value).inc()
        stopped = facts.ending is not None or facts.dcc_notice is not None
        if facts.wan is not None:
            wan = facts.wan
            if wan.established and wan.time_to_connected_s is not None:
                self._probe("wan", ProbeResult.ESTABLISHED)
                self.establish_seconds.labels("wan").observe(wan.time_to_connected_s)
            else:
                self._probe(
                    "wan", ProbeResult.INTERRUPTED if stopped else ProbeResult.NOT_ESTABLISHED
                )
        if facts.han is not None and facts.han.probed:
            required = [d for d in facts.han.devices if d.required]
            if required and all(d.joined for d in required):
                self._probe("han", ProbeResult.ESTABLISHED)
                times = [d.seconds_to_join for d in required if d.seconds_to_join is not None]
                if times:
                    self.establish_seconds.labels("han").observe(max(times))
            else:
                self._probe(
                    "han", ProbeResult.INTERRUPTED if stopped else ProbeResult.NOT_ESTABLISHED
                )

    def count_task_failure(self, task: Task) -> None:
        """A supervised background task failed (it is restarted)."""
        self.task_failures.labels(task.value).inc()

    def _probe(self, link: str, result: str) -> None:
        self.probe_attempts.labels(link, result).inc()
