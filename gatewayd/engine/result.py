"""The result document: one job's verdict and the facts behind it, ready to publish.

Flow: probe outcomes -> verdict -> **publications**. ``build_result`` turns a run's facts and
its verdict into a ``ResultDocument``; ``gatewayd probe --json`` prints it and the MQTT
outbox publishes it, both as ``doc.model_dump(mode="json")``. The model is also the contract
for readers: validate a received payload with ``ResultDocument.model_validate``.

Each part is validated from its record's ``published()``, the one mapping of field names and
forms that the verdict's evidence also picks from; the models here only type and describe it,
and refuse a field the record publishes but the contract does not name.

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
from gatewayd.engine.next_actions import Action, NextAction
from gatewayd.engine.outcomes import Cancelled, DeviceOutcome, Failed, HanOutcome, RunFacts
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

# defer_build: each model's validator and serializer are built at its first use, once, not
# when this module is imported: `gatewayd run` imports it (the contract's abort notice names
# NextActionDoc) long before its first result.
_DOC = ConfigDict(extra="forbid", frozen=True, defer_build=True)


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
        defer_build=True,
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
        meter_type=MeterTypeDoc.model_validate(facts.meter_type.published()),
        wan=WanDoc.model_validate(facts.wan.published()) if facts.wan is not None else None,
        han=_han_doc(facts),
        hub=HubDoc.model_validate(facts.hub.published()) if facts.hub is not None else None,
        dcc_notice=DccNoticeDoc.model_validate(notice.published()) if notice is not None else None,
        cancellation=(
            CancellationDoc.model_validate(ending.published())
            if isinstance(ending, Cancelled)
            else None
        ),
        failure=(
            FailureDoc.model_validate(ending.published()) if isinstance(ending, Failed) else None
        ),
        started_at=started_at,
        finished_at=finished_at,
        gatewayd_version=__version__,
    )


def _action_doc(action: NextAction) -> NextActionDoc:
    return NextActionDoc(action=action.action, text=action.text, not_before=action.not_before)


def _device_doc(d: DeviceOutcome, required: bool) -> DeviceDoc:
    return DeviceDoc.model_validate(d.published() | {"required": required})


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
