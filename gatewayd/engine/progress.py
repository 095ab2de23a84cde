"""Progress of a job as it runs: one small record per step, for people and the back office.

Probes and the engine report through a ``Reporter``; whoever shows or publishes progress
subscribes a sink: ``gatewayd probe`` draws it on the terminal, and ``gatewayd run``
publishes each record as a job event on MQTT (``jobs/<job_id>/events``). Every record is
also logged. Reporting never blocks and a failing sink never stops a job.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gatewayd.clock import Clock

_log = logging.getLogger(__name__)


class Stage(enum.StrEnum):
    METER_TYPE = "meter_type"
    HUB = "hub"
    WAN = "wan"
    HAN = "han"
    VERDICT = "verdict"


class Kind(enum.StrEnum):
    STAGE = "stage"  # a stage started or ended
    ATTEMPT = "attempt"  # a poll, a reconnect, a join window opened
    HUB_STATE = "hub_state"  # the hub reported a WAN/HAN state
    DEVICE = "device"  # a device joined, failed, was lost
    LINK = "link"  # the serial link dropped or came back, the hub restarted
    NOTE = "note"  # anything else worth a line (a hub error, a DCC notice)
    VERDICT = "verdict"


@dataclass(frozen=True, slots=True)
class Progress:
    """One step. ``elapsed_s`` is site seconds since the job started."""

    job_id: str
    stage: Stage
    kind: Kind
    message: str
    elapsed_s: float
    attempt: int | None = None
    wan_state: str | None = None
    rssi_dbm: int | None = None
    device: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


ProgressSink = Callable[[Progress], None]


class Reporter:
    """Stamps progress with the job and elapsed time and hands it to every sink."""

    def __init__(self, job_id: str, clock: Clock, sinks: list[ProgressSink] | None = None) -> None:
        self.job_id = job_id
        self.clock = clock
        self.started = clock.monotonic()
        self._sinks: list[ProgressSink] = list(sinks or [])

    def add_sink(self, sink: ProgressSink) -> None:
        self._sinks.append(sink)

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.started

    def __call__(
        self,
        stage: Stage,
        kind: Kind,
        message: str,
        *,
        attempt: int | None = None,
        wan_state: str | None = None,
        rssi_dbm: int | None = None,
        device: str | None = None,
        **data: Any,
    ) -> None:
        item = Progress(
            job_id=self.job_id,
            stage=stage,
            kind=kind,
            message=message,
            elapsed_s=self.elapsed(),
            attempt=attempt,
            wan_state=wan_state,
            rssi_dbm=rssi_dbm,
            device=device,
            data=data,
        )
        _log.info("job step job=%s stage=%s kind=%s text=%r", self.job_id, stage, kind, message)
        for sink in self._sinks:
            try:
                sink(item)
            except Exception:
                _log.exception("progress sink failed job=%s", self.job_id)
