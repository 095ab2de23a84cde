"""The result document: one job's verdict and the facts behind it, ready to publish.

Flow: probe outcomes -> verdict -> **publications**. ``build_result`` turns a run's facts and
its verdict into a ``ResultDocument``; ``gatewayd probe --json`` prints it and the MQTT
outbox publishes it, both as ``doc.model_dump(mode="json")``. The model is also the contract
for readers: validate a received payload with ``ResultDocument.model_validate``.

Publishing conventions: hub enums appear as lower-case names (``connected``, ``single_band``;
``unknown(N)`` for a number the spec does not list), device types as their upper-case names
(``GSME``), times as ISO 8601 with an offset, durations in site seconds. Install codes,
MPAN and MPRN are never published: the back office knows the site by ``job_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from gatewayd import __version__
from gatewayd.config.job import Policy
from gatewayd.engine.meter_arrangement import MeterReadingFacts
from gatewayd.engine.next_actions import Action, NextAction
from gatewayd.engine.outcomes import (
    Cancelled,
    DeviceOutcome,
    Failed,
    HanOutcome,
    HubFacts,
    RunFacts,
    SurveyEvidence,
    WanOutcome,
    enum_label,
)
from gatewayd.engine.verdict import AbortCode, Outcome, Stage, Verdict

__all__ = [
    "RESULT_SCHEMA",
    "AbortDoc",
    "CancellationDoc",
    "DccNoticeDoc",
    "DeviceDoc",
    "FailureDoc",
    "HanDoc",
    "HubDoc",
    "MeterReadingDoc",
    "MeterTypeDoc",
    "NextActionDoc",
    "ResultDocument",
    "RssiPoint",
    "WanDoc",
    "build_result",
]

RESULT_SCHEMA: Final = "gatewayd.result/1"

_DOC = ConfigDict(extra="forbid", frozen=True)


class AbortDoc(BaseModel):
    model_config = _DOC

    code: AbortCode
    title: str
    evidence: dict[str, JsonValue]


class NextActionDoc(BaseModel):
    model_config = _DOC

    action: Action
    text: str
    not_before: AwareDatetime | None = None


class RssiPoint(BaseModel):
    model_config = _DOC

    t_s: float = Field(description="Site seconds into the WAN stage")
    dbm: int


class WanDoc(BaseModel):
    """The WAN stage; absent (null) from the document when the stage never ran."""

    model_config = _DOC

    established: bool
    final_state: str | None
    deadline_s: float
    attempts: int
    polls: int
    reconnects: int
    time_to_registered_s: float | None
    time_to_connected_s: float | None
    rssi_trail: list[RssiPoint]
    stuck_in_fault: bool
    dropped_after_connect: bool
    error: str | None


class SurveyEvidenceDoc(BaseModel):
    """The RF survey taken where a failing device stands (see docs/rf-survey.md)."""

    model_config = _DOC

    position: str
    taken_at: AwareDatetime
    judgement: str = Field(description="good, marginal or not_heard")
    reasons: list[str]
    source: str = Field(description="prompt, stored or mqtt")
    hub_channel: int | None
    hub_lqi: int | None
    hub_rssi_dbm_estimate: int | None
    hub_channel_energy: int | None
    scans: int
    scans_heard: int


class DeviceDoc(BaseModel):
    model_config = _DOC

    eui64: str
    type: str
    required: bool
    probed: bool
    joined: bool
    attempts: int
    seconds_to_join: float | None
    band: str | None
    rssi: int | None = Field(description="dBm, as the hub's device log last reported")
    lqi: int | None
    last_failure: str | None
    survey: str | None
    survey_evidence: SurveyEvidenceDoc | None = None


class HanDoc(BaseModel):
    """The HAN stage; every device of the job is listed, as not probed if the stage never ran."""

    model_config = _DOC

    probed: bool
    devices: list[DeviceDoc]
    error: str | None = None


class MeterReadingDoc(BaseModel):
    """The optical probe's reading of the existing meter (no register values, no serial)."""

    model_config = _DOC

    read: bool = Field(description="False when the meter could not be read; see error")
    supply: str | None = Field(description="The arrangement the readout shows; null: unknown")
    manufacturer: str | None
    identification: str | None
    rule: str | None = Field(description="The mapping rule that gave the arrangement")
    evidence: list[str]
    baudrate: int | None
    error: str | None


class MeterTypeDoc(BaseModel):
    model_config = _DOC

    applicable: bool
    available: bool
    supply: str | None
    source: str | None
    ct: bool
    needed_variant: str | None
    van_variants: list[str]
    job_supply: str | None
    mismatch: bool
    note: str | None = Field(
        default=None,
        description="What the meter reading did to the check: a mismatch, or why the job's "
        "value was used",
    )
    meter: MeterReadingDoc | None = Field(
        default=None, description="Present when the kit read the meter through its probe"
    )


class HubDoc(BaseModel):
    model_config = _DOC

    eui64: str
    hw_variant: str
    wan_variant: str | None
    csp_region: str | None
    firmware: str | None


class DccNoticeDoc(BaseModel):
    model_config = _DOC

    received_at: AwareDatetime
    not_before: AwareDatetime | None
    reference: str | None
    text: str | None


class CancellationDoc(BaseModel):
    model_config = _DOC

    by: str
    reason: str | None


class FailureDoc(BaseModel):
    model_config = _DOC

    reason: str
    stage: str | None


class ResultDocument(BaseModel):
    """What one job run published. Keys are stable within a ``schema`` version."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    # Named schema_ in Python because BaseModel has a (deprecated) schema() method.
    schema_: Literal["gatewayd.result/1"] = Field(default=RESULT_SCHEMA, alias="schema")
    job_id: str
    policy: Policy
    outcome: Outcome
    stage: Stage | None
    abort: AbortDoc | None
    next_actions: list[NextActionDoc]
    meter_type: MeterTypeDoc
    wan: WanDoc | None
    han: HanDoc
    hub: HubDoc | None
    dcc_notice: DccNoticeDoc | None
    cancellation: CancellationDoc | None
    failure: FailureDoc | None
    started_at: AwareDatetime
    finished_at: AwareDatetime
    gatewayd_version: str


def build_result(
    facts: RunFacts,
    verdict: Verdict,
    *,
    started_at: datetime,
    finished_at: datetime,
) -> ResultDocument:
    """The document for one run. ``started_at``/``finished_at`` come from the run's clock."""
    if started_at.utcoffset() is None or finished_at.utcoffset() is None:
        raise ValueError("started_at and finished_at must be timezone-aware")
    if finished_at < started_at:
        raise ValueError(f"finished_at {finished_at} is before started_at {started_at}")
    abort = verdict.abort
    notice = facts.dcc_notice
    ending = facts.ending
    return ResultDocument(
        job_id=facts.job.job_id,
        policy=facts.job.policy,
        outcome=verdict.outcome,
        stage=verdict.stage,
        abort=(
            AbortDoc(code=abort.code, title=abort.title, evidence=dict(abort.evidence))
            if abort is not None
            else None
        ),
        next_actions=[_action_doc(a) for a in verdict.next_actions],
        meter_type=_meter_type_doc(facts),
        wan=_wan_doc(facts.wan) if facts.wan is not None else None,
        han=_han_doc(facts),
        hub=_hub_doc(facts.hub) if facts.hub is not None else None,
        dcc_notice=(
            DccNoticeDoc(
                received_at=notice.received_at,
                not_before=notice.not_before,
                reference=notice.reference,
                text=notice.text,
            )
            if notice is not None
            else None
        ),
        cancellation=(
            CancellationDoc(by=ending.by, reason=ending.reason)
            if isinstance(ending, Cancelled)
            else None
        ),
        failure=(
            FailureDoc(reason=ending.reason, stage=ending.stage)
            if isinstance(ending, Failed)
            else None
        ),
        started_at=started_at,
        finished_at=finished_at,
        gatewayd_version=__version__,
    )


def _action_doc(action: NextAction) -> NextActionDoc:
    return NextActionDoc(action=action.action, text=action.text, not_before=action.not_before)


def _meter_type_doc(facts: RunFacts) -> MeterTypeDoc:
    mt = facts.meter_type
    return MeterTypeDoc(
        applicable=mt.applicable,
        available=mt.available,
        supply=mt.supply.value if mt.supply is not None else None,
        source=mt.source.value if mt.source is not None else None,
        ct=mt.is_ct,
        needed_variant=mt.needed_variant.value if mt.needed_variant is not None else None,
        van_variants=[v.value for v in mt.van_variants],
        job_supply=mt.job_supply.value if mt.job_supply is not None else None,
        mismatch=mt.mismatch,
        note=mt.note,
        meter=_meter_reading_doc(mt.meter) if mt.meter is not None else None,
    )


def _meter_reading_doc(m: MeterReadingFacts) -> MeterReadingDoc:
    return MeterReadingDoc(
        read=m.read,
        supply=m.supply.value if m.supply is not None else None,
        manufacturer=m.manufacturer,
        identification=m.identification,
        rule=m.rule,
        evidence=list(m.evidence),
        baudrate=m.baudrate,
        error=m.error,
    )


def _wan_doc(wan: WanOutcome) -> WanDoc:
    return WanDoc(
        established=wan.established,
        final_state=enum_label(wan.final_state),
        deadline_s=wan.deadline_s,
        attempts=wan.attempts,
        polls=wan.polls,
        reconnects=wan.reconnects,
        time_to_registered_s=wan.time_to_registered_s,
        time_to_connected_s=wan.time_to_connected_s,
        rssi_trail=[RssiPoint(t_s=s.t_s, dbm=s.dbm) for s in wan.rssi_trail],
        stuck_in_fault=wan.stuck_in_fault,
        dropped_after_connect=wan.dropped_after_connect,
        error=wan.error,
    )


_BAND_LABELS = {0: "2.4ghz", 1: "868mhz"}


def _band_label(band: int | None) -> str | None:
    if band is None:
        return None
    return _BAND_LABELS.get(int(band), f"unknown({int(band)})")


def _device_doc(d: DeviceOutcome, required: bool) -> DeviceDoc:
    return DeviceDoc(
        eui64=str(d.eui64),
        type=d.type.name,
        required=required,
        probed=d.probed,
        joined=d.joined,
        attempts=d.attempts,
        seconds_to_join=d.seconds_to_join,
        band=_band_label(d.band),
        rssi=d.rssi_dbm,
        lqi=d.lqi,
        last_failure=d.last_failure.value if d.last_failure is not None else None,
        survey=d.survey.value if d.survey is not None else None,
        survey_evidence=_survey_doc(d.survey_evidence) if d.survey_evidence else None,
    )


def _survey_doc(ev: SurveyEvidence) -> SurveyEvidenceDoc:
    return SurveyEvidenceDoc(
        position=ev.position,
        taken_at=ev.taken_at,
        judgement=ev.judgement.value,
        reasons=list(ev.reasons),
        source=ev.source,
        hub_channel=ev.hub_channel,
        hub_lqi=ev.hub_lqi,
        hub_rssi_dbm_estimate=ev.hub_rssi_dbm_estimate,
        hub_channel_energy=ev.hub_channel_energy,
        scans=ev.scans,
        scans_heard=ev.scans_heard,
    )


def _han_doc(facts: RunFacts) -> HanDoc:
    han = facts.han or HanOutcome.not_probed(facts.job.devices)
    # Every job device in the job's order, with the job's word on whether it is required
    # (that is what the verdict used); devices the probe reported beyond the job follow.
    docs = [
        _device_doc(han.device(dev.eui64) or DeviceOutcome.not_probed(dev), dev.required)
        for dev in facts.job.devices
    ]
    docs += [_device_doc(d, d.required) for d in han.devices if facts.job.device(d.eui64) is None]
    return HanDoc(probed=han.probed, devices=docs, error=han.error)


def _hub_doc(hub: HubFacts) -> HubDoc:
    return HubDoc(
        eui64=str(hub.eui64),
        hw_variant=enum_label(hub.hw_variant) or "unknown",
        wan_variant=enum_label(hub.wan_variant),
        csp_region=enum_label(hub.csp_region),
        firmware=hub.firmware,
    )
