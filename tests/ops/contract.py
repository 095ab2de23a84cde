"""The metric names gatewayd exports, and the metric names a PromQL expression uses.

The dashboard and the alert rules may only use these (a typo in a metric name makes a
panel or an alert silently empty, which nothing else would catch).
"""

from __future__ import annotations

import re

# The daemon's metric contract (gatewayd_* and the process collector), plus `up`, which
# Prometheus itself records for every scrape.
METRICS = frozenset(
    {
        "gatewayd_build_info",
        "gatewayd_probe_attempts_total",
        "gatewayd_link_establish_duration_seconds",
        "gatewayd_jobs_total",
        "gatewayd_jobs_running",
        "gatewayd_aborts_total",
        "gatewayd_serial_bytes_total",
        "gatewayd_serial_frames_total",
        "gatewayd_serial_errors_total",
        "gatewayd_serial_reconnects_total",
        "gatewayd_serial_connected",
        "gatewayd_mqtt_connected",
        "gatewayd_mqtt_session_takeovers_total",
        "gatewayd_outbox_messages",
        "gatewayd_outbox_oldest_message_age_seconds",
        "gatewayd_outbox_dropped_total",
        "gatewayd_outbox_memory_messages",
        "gatewayd_hub_wan_rssi_dbm",
        "gatewayd_task_failures_total",
        "up",
    }
)
HISTOGRAMS = frozenset({"gatewayd_link_establish_duration_seconds"})

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (function names and label names left out)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def unknown_metrics(expr: str) -> set[str]:
    """Metric names in the expression that gatewayd does not export."""
    unknown = set()
    for name in metric_names(expr):
        if name in METRICS:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base in HISTOGRAMS:
            continue
        unknown.add(name)
    return unknown
