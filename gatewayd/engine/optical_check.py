"""Read the existing meter through the kit's optical probe for the meter type check.

Flow: meter state (the driver's IEC 62056-21 readout) -> the arrangement rules -> the facts
the meter type check uses. A read that fails is not an error of the job: it becomes facts
with ``read=False`` and the reason, and the check falls back to the job's value. Reads of
one probe are serialised: two jobs (two hubs) cannot sign on to the same meter at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from gatewayd.config.errors import ConfigError
from gatewayd.config.optical import OpticalProbeConfig
from gatewayd.engine.meter_arrangement import (
    ArrangementRules,
    MeterReadingFacts,
    infer_arrangement,
    load_rules,
)
from gatewayd.engine.progress import Kind, Reporter, Stage
from gatewayd.engine.published import enum_value
from gatewayd_drivers.iec62056.errors import OpticalError
from gatewayd_drivers.iec62056.reader import MeterReading, ReaderTimings, ReadOptions, read_meter

__all__ = ["facts_from_reading", "read_options", "read_site_meter"]

_log = logging.getLogger(__name__)

_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock_for(port: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault(port, asyncio.Lock())


def read_options(cfg: OpticalProbeConfig, timings: ReaderTimings | None = None) -> ReadOptions:
    return ReadOptions(
        device_address=cfg.device_address,
        wake_up=cfg.wake_up,
        baud_switch=cfg.baud_switch,
        max_baudrate=cfg.max_baudrate,
        timings=timings or ReaderTimings(),
    )


def facts_from_reading(
    reading: MeterReading, rules: ArrangementRules | None = None
) -> MeterReadingFacts:
    ident = reading.identification
    inference = infer_arrangement(
        ident.manufacturer, ident.identification, reading.data_sets, rules
    )
    evidence = inference.evidence
    if reading.baud_switch_failed:
        evidence += (f"read at 300 baud after the baud switch failed ({reading.first_error})",)
    return MeterReadingFacts(
        read=True,
        supply=inference.supply,
        manufacturer=ident.manufacturer,
        identification=ident.identification,
        rule=inference.rule,
        evidence=evidence,
        baudrate=reading.baudrate,
    )


async def read_site_meter(
    cfg: OpticalProbeConfig, report: Reporter, *, timings: ReaderTimings | None = None
) -> MeterReadingFacts:
    """Read the meter at the probe and tell its arrangement; never raises for a bad read."""
    report(Stage.METER_TYPE, Kind.STAGE, "Reading the existing meter through the optical probe")
    try:
        rules = load_rules(cfg.rules) if cfg.rules is not None else None
    except ConfigError as exc:  # checked at start-up; the file may have changed since
        return _unread(report, f"the arrangement rules file is not usable: {exc}")
    async with _lock_for(cfg.port):
        try:
            reading = await read_meter(cfg.port, read_options(cfg, timings))
        except OpticalError as exc:
            return _unread(report, f"{exc.step}: {exc}")
    facts = facts_from_reading(reading, rules)
    supply = enum_value(facts.supply) or "unknown"
    report(
        Stage.METER_TYPE,
        Kind.NOTE,
        f"Meter {facts.manufacturer} {facts.identification}: supply {supply}"
        + (f" ({facts.rule})" if facts.rule else ""),
        meter_supply=enum_value(facts.supply),
        manufacturer=facts.manufacturer,
        identification=facts.identification,
    )
    return facts


def _unread(report: Reporter, why: str) -> MeterReadingFacts:
    _log.warning("optical meter read failed: %s", why)
    report(Stage.METER_TYPE, Kind.NOTE, f"The meter could not be read: {why}", meter_read=False)
    return MeterReadingFacts(read=False, error=why)
