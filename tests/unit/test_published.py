"""The one mapping from outcomes to what is published: the helpers, and that the verdict's
evidence and the result document both come from each record's ``published()``."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from gatewayd.config.job import Job, Policy, Supply, load_job
from gatewayd.engine.meter_arrangement import MeterReadingFacts
from gatewayd.engine.meter_type import ElectricityVariant, check_meter_type
from gatewayd.engine.outcomes import (
    DccNotice,
    DeviceOutcome,
    HanOutcome,
    HubFacts,
    JoinFailure,
    RssiSample,
    RunFacts,
    SurveyEvidence,
    SurveyJudgement,
    WanOutcome,
)
from gatewayd.engine.published import as_json, enum_label, enum_value, pick
from gatewayd.engine.result import ResultDocument, build_result
from gatewayd.engine.verdict import decide
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    CspRegion,
    DeviceType,
    HwVariant,
    WanState,
    WanVariant,
)

JOBS = Path(__file__).resolve().parents[2] / "examples" / "jobs"
START = datetime(2025, 5, 6, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=12)


@pytest.fixture
def job() -> Job:
    return load_job(JOBS / "dual-fuel.toml")


class _Colour(enum.StrEnum):
    DARK_RED = "dark_red"


class _Level(enum.IntEnum):
    HIGH_UP = 2


def test_enum_helpers() -> None:
    assert enum_value(_Colour.DARK_RED) == "dark_red"
    assert enum_value(None) is None
    assert enum_label(_Level.HIGH_UP) == "high_up"
    assert enum_label(7) == "unknown(7)"
    assert enum_label(None) is None


def test_as_json_writes_times_as_iso_8601_at_any_depth() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert as_json({"a": [t, {"b": t}], "c": 1.5, "d": None}) == {
        "a": ["2026-01-02T03:04:05+00:00", {"b": "2026-01-02T03:04:05+00:00"}],
        "c": 1.5,
        "d": None,
    }


def test_pick_keeps_the_order_named() -> None:
    picked = pick({"a": 1, "b": 2, "c": 3}, "c", "a")
    assert list(picked) == ["c", "a"]
    with pytest.raises(KeyError):
        pick({"a": 1}, "missing")


def _survey() -> SurveyEvidence:
    return SurveyEvidence(
        position="00-DB-12-34-56-78-90-A2",
        taken_at=datetime(2025, 5, 6, 8, 50, tzinfo=UTC),
        judgement=SurveyJudgement.MARGINAL,
        reasons=("LQI 60 below 80",),
        source="stored",
        hub_channel=15,
        hub_lqi=60,
        hub_rssi_dbm_estimate=-88,
        hub_channel_energy=40,
        scans=3,
        scans_heard=2,
    )


def _hub() -> HubFacts:
    return HubFacts(
        eui64=Eui64.parse("00-DB-12-34-56-78-90-A0"),
        hw_variant=HwVariant.SINGLE_BAND,
        wan_variant=WanVariant.CELLULAR,
        csp_region=CspRegion.CENTRAL,
        firmware="CHSIM-2.4.1",
    )


def _wan(established: bool = True) -> WanOutcome:
    return WanOutcome(
        established=established,
        final_state=WanState.CONNECTED if established else 9,
        deadline_s=1800,
        attempts=2,
        polls=4,
        reconnects=1,
        time_to_registered_s=3.0,
        time_to_connected_s=6.0 if established else None,
        rssi_trail=(RssiSample(0.0, -95), RssiSample(6.0, -76)),
        error=None if established else "no WAN",
    )


def _han(job: Job) -> HanOutcome:
    esme, gsme, ihd = job.devices
    return HanOutcome(
        probed=True,
        devices=(
            DeviceOutcome(
                esme.eui64,
                DeviceType.ESME,
                True,
                probed=True,
                joined=True,
                attempts=1,
                seconds_to_join=10.0,
                band=Band.GHZ_2_4,
                rssi_dbm=-55,
                lqi=230,
            ),
            DeviceOutcome(
                gsme.eui64,
                DeviceType.GSME,
                True,
                probed=True,
                joined=False,
                attempts=3,
                band=7,
                last_failure=JoinFailure.WINDOW_EXPIRED,
                survey=SurveyJudgement.MARGINAL,
                survey_evidence=_survey(),
            ),
            DeviceOutcome.not_probed(ihd),
        ),
    )


def _doc(run: RunFacts) -> ResultDocument:
    return build_result(run, decide(run), started_at=START, finished_at=END)


def test_every_part_of_the_result_is_its_records_published_form(job: Job) -> None:
    meter = MeterReadingFacts(
        read=True,
        supply=Supply.POLYPHASE,
        manufacturer="ELS",
        identification="ELS5\\2A1700",
        rule="three live phases",
        evidence=("L1, L2, L3 registers",),
        baudrate=9600,
    )
    run = RunFacts(
        job=job,
        meter_type=check_meter_type(job, tuple(ElectricityVariant), meter=meter),
        wan=_wan(),
        han=_han(job),
        hub=_hub(),
        dcc_notice=DccNotice(
            received_at=START + timedelta(minutes=5),
            not_before=START + timedelta(days=1),
            reference="SC-1",
            text="cannot reach the site",
        ),
    )
    doc = _doc(run).model_dump()  # Python values: times stay datetimes, as published() has them

    assert run.meter_type.meter is meter
    assert doc["meter_type"] == run.meter_type.published()
    assert doc["meter_type"]["meter"] == meter.published()
    assert doc["wan"] == _wan().published()
    assert doc["hub"] == _hub().published()
    assert run.dcc_notice is not None
    assert doc["dcc_notice"] == run.dcc_notice.published()
    assert run.han is not None
    assert doc["han"]["devices"] == [d.published() for d in run.han.devices]


def _same(evidence: JsonValue, published: Any) -> bool:
    """Evidence writes times as ISO 8601 text, the document as datetimes: compare the times."""
    if isinstance(published, datetime):
        return isinstance(evidence, str) and datetime.fromisoformat(evidence) == published
    if isinstance(published, dict):
        return isinstance(evidence, dict) and all(
            _same(evidence[k], published[k]) for k in evidence
        )
    return bool(evidence == published)


def test_han_evidence_reads_as_the_result_document_does(job: Job) -> None:
    run = RunFacts(
        job=job,
        meter_type=check_meter_type(job, tuple(ElectricityVariant)),
        wan=_wan(),
        han=_han(job),
        hub=_hub(),
    )
    doc = _doc(run)
    assert doc.abort is not None
    evidence = doc.abort.evidence
    failing = evidence["failing_devices"]
    assert isinstance(failing, list) and len(failing) == 1
    gsme = failing[0]
    assert isinstance(gsme, dict)
    published = doc.model_dump()
    assert set(gsme) == {
        "eui64",
        "type",
        "probed",
        "attempts",
        "last_failure",
        "survey",
        "survey_evidence",
    }
    assert _same(gsme, published["han"]["devices"][1])
    assert evidence["hub_hw_variant"] == published["hub"]["hw_variant"]


def test_wan_and_meter_type_evidence_read_as_the_result_document_does(job: Job) -> None:
    no_wan = RunFacts(
        job=job.model_copy(update={"policy": Policy.ABORT_ON_NO_WAN}),
        meter_type=check_meter_type(job, tuple(ElectricityVariant)),
        wan=_wan(established=False),
    )
    doc = _doc(no_wan)
    assert doc.abort is not None
    evidence = dict(doc.abort.evidence)
    assert (evidence.pop("reason"), evidence.pop("policy")) == (
        "no_wan_by_deadline",
        "abort_on_no_wan",
    )
    assert evidence["final_state"] == "unknown(9)"
    assert _same(evidence, doc.model_dump()["wan"])

    polyphase = MeterReadingFacts(read=True, supply=Supply.POLYPHASE)
    no_meter = RunFacts(
        job=job,
        meter_type=check_meter_type(job, (ElectricityVariant.SINGLE_PHASE,), meter=polyphase),
    )
    doc = _doc(no_meter)
    assert doc.abort is not None
    assert list(doc.abort.evidence) == [
        "supply",
        "source",
        "ct",
        "needed_variant",
        "van_variants",
        "job_supply",
    ]
    assert _same(doc.abort.evidence, doc.model_dump()["meter_type"])
