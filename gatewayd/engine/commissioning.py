"""One commissioning job, start to verdict: meter type, then WAN, then HAN.

Probe outcomes -> verdict -> result document. Runs the stages in the domain's
order on one hub, races them against a DCC notice and a cancellation, and turns
whatever the stages reached into ``RunFacts`` for the pure verdict. A notice or
a cancellation stops the running probe and keeps its evidence so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from gatewayd.clock import Clock
from gatewayd.config.job import Fuel, Job, Supply
from gatewayd.config.kit import KitConfig, StageTiming
from gatewayd.config.optical import OpticalProbeConfig
from gatewayd.engine.dcc import DccInput
from gatewayd.engine.meter_arrangement import MeterReadingFacts
from gatewayd.engine.meter_type import MeterTypeResult, check_meter_type
from gatewayd.engine.optical_check import read_site_meter
from gatewayd.engine.outcomes import (
    Cancelled,
    DccNotice,
    Ending,
    Failed,
    HanOutcome,
    HubFacts,
    RunFacts,
    WanOutcome,
)
from gatewayd.engine.probes.base import FINAL_READ_TRIES
from gatewayd.engine.probes.han import HanProbe
from gatewayd.engine.probes.wan import WanProbe
from gatewayd.engine.progress import Kind, ProgressSink, Reporter, Stage
from gatewayd.engine.published import enum_label, enum_value
from gatewayd.engine.result import ResultDocument, build_result
from gatewayd.engine.verdict import Verdict, decide
from gatewayd.survey.source import SurveySource
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_drivers.commshub.errors import HubError, HubTimeout

_log = logging.getLogger(__name__)

# Real seconds to wait for the hub's port to open at the start of a job.
HUB_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JobRun:
    facts: RunFacts
    verdict: Verdict
    result: ResultDocument


class _Stages:
    """The stage sequence; its fields hold what was reached if it is stopped midway."""

    def __init__(
        self,
        job: Job,
        hub: HubClient,
        clock: Clock,
        timing: StageTiming,
        report: Reporter,
        surveys: SurveySource | None = None,
    ) -> None:
        self.surveys = surveys
        self.job = job
        self.hub = hub
        self.clock = clock
        self.timing = timing
        self.report = report
        self.hub_facts: HubFacts | None = None
        self.wan_probe: WanProbe | None = None
        self.han_probe: HanProbe | None = None
        self.han: HanOutcome | None = None
        self.failure: Failed | None = None

        self._frozen: tuple[WanOutcome | None, HanOutcome | None] | None = None

    @property
    def wan(self) -> WanOutcome | None:
        if self._frozen is not None:
            return self._frozen[0]
        return self.wan_probe.outcome() if self.wan_probe is not None else None

    def han_so_far(self) -> HanOutcome | None:
        if self._frozen is not None:
            return self._frozen[1]
        if self.han is not None:
            return self.han
        return self.han_probe.outcome() if self.han_probe is not None else None

    def freeze(self) -> None:
        """Keep the evidence as it stands now: a notice or a cancellation ends the job here."""
        self._frozen = (self.wan, self.han_so_far())

    async def run(self) -> None:
        if not await self._identify_hub():
            return
        self.wan_probe = WanProbe(self.hub, self.clock, self.timing, self.report)
        wan = await self.wan_probe.run()
        if not wan.established:
            if self.wan_probe.silence is not None:
                self.failure = Failed(
                    f"the hub stopped answering during the WAN probe: "
                    f"{self.wan_probe.silence.reason}",
                    "wan",
                )
            elif self.wan_probe.link_down:
                self.failure = Failed(
                    f"lost contact with the hub during the WAN probe: {wan.error}", "wan"
                )
            return
        self.han_probe = HanProbe(
            self.hub, self.clock, self.timing, list(self.job.devices), self.report
        )
        self.han = await self.han_probe.run()
        if self.han_probe.silence is not None:
            self.failure = Failed(
                f"the hub stopped answering during the HAN probe: {self.han_probe.silence.reason}",
                "han",
            )
        elif self.han_probe.link_down and not all(d.joined for d in self.han.devices if d.required):
            self.failure = Failed("lost contact with the hub during the HAN probe", "han")
        elif self.surveys is not None:
            self.han = await self._survey_failing(self.han, self.surveys)

    async def _survey_failing(self, han: HanOutcome, surveys: SurveySource) -> HanOutcome:
        """Each failing required device gets the RF survey at its position, when there is one."""
        devices = list(han.devices)
        for i, d in enumerate(devices):
            job_device = self.job.device(d.eui64)
            if job_device is None or not d.required or not d.probed or d.joined:
                continue
            try:
                evidence = await surveys.survey_for(job_device, self.hub_facts)
            except Exception as exc:  # a survey is evidence, never a reason to lose the verdict
                _log.warning("no RF survey for %s: %s", d.eui64, exc)
                continue
            if evidence is None:
                self.report(Stage.HAN, Kind.NOTE, f"No RF survey at the {d.type.name} {d.eui64}")
                continue
            devices[i] = replace(d, survey=evidence.judgement, survey_evidence=evidence)
            self.report(
                Stage.HAN,
                Kind.NOTE,
                f"RF survey at the {d.type.name} {d.eui64}: the hub is "
                f"{evidence.judgement.value.replace('_', ' ')} ({evidence.source}, "
                f"{evidence.taken_at.isoformat(timespec='seconds')})",
            )
        return replace(han, devices=tuple(devices))

    async def _identify_hub(self) -> bool:
        self.report(Stage.HUB, Kind.STAGE, f"Connecting to the hub on {self.hub.port}")
        if not await self.hub.wait_connected(HUB_CONNECT_TIMEOUT_S):
            why = self.hub.last_link_error or "the port did not open"
            self.failure = Failed(f"cannot open the hub's port {self.hub.port}: {why}", "hub")
            return False
        for _ in range(FINAL_READ_TRIES):
            try:
                info = await self.hub.get_info()
                break
            except HubTimeout as exc:
                # One timeout alone is line noise, retried; a silent hub is a failure.
                silence = self.hub.silence()
                if silence is None:
                    continue
                why = f"{exc}; {silence.reason}"
            except HubError as exc:
                why = str(exc)
            self.failure = Failed(f"the hub does not answer on {self.hub.port}: {why}", "hub")
            return False
        else:
            self.failure = Failed(f"the hub does not answer on {self.hub.port}", "hub")
            return False
        self.hub_facts = HubFacts.from_info(info)
        self.report(
            Stage.HUB,
            Kind.STAGE,
            f"Hub {info.eui64}: {enum_label(info.hw_variant)}, "
            f"WAN {enum_label(info.wan_variant)}, region {enum_label(info.csp_region)}, "
            f"firmware {info.firmware}",
        )
        return True


async def run_job(
    job: Job,
    kit: KitConfig,
    hub: HubClient,
    *,
    clock: Clock,
    dcc: DccInput | None = None,
    cancel: asyncio.Event | None = None,
    cancelled_by: str | Callable[[], str] = "installer",
    sinks: list[ProgressSink] | None = None,
    meter_supply: Supply | None = None,
    surveys: SurveySource | None = None,
) -> JobRun:
    """Run ``job`` on ``hub`` (already started) and return its verdict and result.

    ``surveys``: where a failing required device's RF survey comes from (none: no survey).
    """
    report = Reporter(job.job_id, clock, sinks)
    started_at = clock.wall()
    timing = kit.timing(job.timing)
    dcc = dcc or DccInput(job.job_id)
    cancel = cancel or asyncio.Event()

    meter: MeterReadingFacts | None = None
    if kit.optical is not None and meter_supply is None and Fuel.ELECTRICITY in job.fuels:
        # The meter on the wall beats the paperwork: read it before deciding the variant.
        meter = await _read_meter_unless_stopped(kit.optical, report, dcc, cancel)
    meter_type = check_meter_type(
        job, kit.van.electricity_variants, meter_supply=meter_supply, meter=meter
    )
    _report_meter_type(report, meter_type)
    stages = _Stages(job, hub, clock, timing, report, surveys)
    notice: DccNotice | None = None
    ending: Ending | None = None

    # A cancellation or a notice that came during the meter read is honoured by the race.
    stopped = cancel.is_set() or dcc.notice is not None
    if not meter_type.applicable or meter_type.available or stopped:
        notice, ending = await _race(stages, dcc, cancel, cancelled_by, report)
    dcc.close()

    if ending is None and stages.failure is not None:
        ending = stages.failure
    facts = RunFacts(
        job=job,
        meter_type=meter_type,
        wan=stages.wan,
        han=stages.han_so_far(),
        hub=stages.hub_facts,
        dcc_notice=notice,
        ending=ending,
    )
    verdict = decide(facts)
    result = build_result(facts, verdict, started_at=started_at, finished_at=clock.wall())
    code = enum_value(verdict.abort_code)
    report(
        Stage.VERDICT,
        Kind.VERDICT,
        f"Verdict: {verdict.outcome.value}" + (f" ({code})" if code is not None else ""),
        outcome=verdict.outcome.value,
        abort=code,
    )
    return JobRun(facts, verdict, result)


async def _read_meter_unless_stopped(
    cfg: OpticalProbeConfig, report: Reporter, dcc: DccInput, cancel: asyncio.Event
) -> MeterReadingFacts:
    """The optical read, cut short by a cancellation or a DCC notice (handled by the race)."""
    read = asyncio.create_task(read_site_meter(cfg, report), name="optical read")
    stop = [asyncio.create_task(cancel.wait()), asyncio.create_task(dcc.wait())]
    try:
        await asyncio.wait({read, *stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*stop, read):
            if not task.done():
                task.cancel()
        for task in (*stop, read):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if read.cancelled():
        return MeterReadingFacts(read=False, error="the job was stopped during the read")
    return read.result()


async def _race(
    stages: _Stages,
    dcc: DccInput,
    cancel: asyncio.Event,
    cancelled_by: str | Callable[[], str],
    report: Reporter,
) -> tuple[DccNotice | None, Ending | None]:
    work = asyncio.create_task(stages.run(), name=f"job {stages.job.job_id}")
    notice_task = asyncio.create_task(dcc.wait())
    cancel_task = asyncio.create_task(cancel.wait())
    notice: DccNotice | None = None
    ending: Ending | None = None
    try:
        await asyncio.wait({work, notice_task, cancel_task}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            work.result()  # a bug in a stage surfaces here, not silently
        elif notice_task.done():
            stages.freeze()
            notice = notice_task.result()
            report(
                Stage.VERDICT,
                Kind.NOTE,
                "DCC notice received: the DCC cannot reach this site's devices; stopping",
            )
        else:
            stages.freeze()
            # Who cancelled is known only now (the daemon sets it as it cancels).
            by = cancelled_by() if callable(cancelled_by) else cancelled_by
            ending = Cancelled(by, "cancelled while the job ran")
            report(Stage.VERDICT, Kind.NOTE, f"Job cancelled by the {by.replace('_', ' ')}")
    finally:
        for task in (work, notice_task, cancel_task):
            task.cancel()
        for task in (work, notice_task, cancel_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return notice, ending


def _report_meter_type(report: Reporter, mt: MeterTypeResult) -> None:
    if mt.note is not None:
        published = mt.published()
        report(
            Stage.METER_TYPE,
            Kind.NOTE,
            f"Meter type: {mt.note}",
            mismatch=mt.mismatch,
            supply=published["supply"],
            job_supply=published["job_supply"],
            source=published["source"],
        )
    if not mt.applicable:
        report(Stage.METER_TYPE, Kind.STAGE, "Gas only: no electricity meter type to check")
    elif mt.available:
        report(
            Stage.METER_TYPE,
            Kind.STAGE,
            f"Meter type: a {mt.needed_variant} SMETS meter is in the van",
        )
    elif mt.is_ct:
        report(Stage.METER_TYPE, Kind.STAGE, "Meter type: CT-metered site; no SMETS meter exists")
    else:
        report(
            Stage.METER_TYPE,
            Kind.STAGE,
            f"Meter type: this site needs a {mt.needed_variant} meter and the van has none",
        )
