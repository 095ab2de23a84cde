"""The result document: built from a run's facts and verdict, JSON all the way."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from gatewayd import __version__
from gatewayd.config.job import Job, load_job
from gatewayd.engine.meter_type import ElectricityVariant, check_meter_type
from gatewayd.engine.outcomes import (
    Cancelled,
    DccNotice,
    DeviceOutcome,
    Failed,
    HanOutcome,
    HubFacts,
    JoinFailure,
    RssiSample,
    RunFacts,
    SurveyJudgement,
    WanOutcome,
)
from gatewayd.engine.result import RESULT_SCHEMA, ResultDocument, build_result
from gatewayd.engine.verdict import decide
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    CspRegion,
    DeviceType,
    HubInfo,
    HwVariant,
    WanState,
    WanVariant,
)

JOBS = Path(__file__).resolve().parents[2] / "examples" / "jobs"
START = datetime(2025, 5, 6, 9, 0, tzinfo=UTC)
END = START + timedelta(minutes=12)
VAN = tuple(ElectricityVariant)


@pytest.fixture
def job() -> Job:
    return load_job(JOBS / "dual-fuel.toml")


def hub() -> HubFacts:
    return HubFacts.from_info(
        HubInfo(
            eui64=Eui64.parse("00-DB-12-34-56-78-90-A0"),
            hw_variant=HwVariant.SINGLE_BAND,
            wan_variant=WanVariant.CELLULAR,
            csp_region=CspRegion.CENTRAL,
            firmware="CHSIM-2.4.1",
            uptime_s=12,
        )
    )


def wan() -> WanOutcome:
    return WanOutcome(
        established=True,
        final_state=WanState.CONNECTED,
        deadline_s=1800,
        attempts=1,
        polls=3,
        reconnects=0,
        time_to_registered_s=3.0,
        time_to_connected_s=6.0,
        rssi_trail=(RssiSample(0.0, -95), RssiSample(3.0, -78), RssiSample(6.0, -76)),
    )


def han(job: Job) -> HanOutcome:
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
                last_failure=JoinFailure.WINDOW_EXPIRED,
                survey=SurveyJudgement.NOT_HEARD,
            ),
            DeviceOutcome(
                ihd.eui64,
                DeviceType.IHD,
                False,
                probed=True,
                joined=True,
                attempts=2,
                seconds_to_join=25.5,
                band=Band.MHZ_868,
                rssi_dbm=-62,
                lqi=210,
            ),
        ),
    )


def doc_for(run: RunFacts) -> ResultDocument:
    return build_result(run, decide(run), started_at=START, finished_at=END)


def test_a_han_abort_document_carries_every_fact(job: Job) -> None:
    run = RunFacts(
        job=job,
        meter_type=check_meter_type(job, VAN),
        wan=wan(),
        han=han(job),
        hub=hub(),
    )
    data = doc_for(run).model_dump(mode="json")
    json.dumps(data)  # must not raise

    assert data["schema"] == RESULT_SCHEMA
    assert data["job_id"] == job.job_id
    assert data["policy"] == "install_and_leave"
    assert data["outcome"] == "aborted"
    assert data["stage"] == "han"
    assert data["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
    assert data["abort"]["title"] == "Unable to Establish HAN - Meter Not Installed"
    assert data["abort"]["evidence"]["failing_devices"][0]["eui64"] == "00-DB-12-34-56-78-90-A2"
    assert [a["action"] for a in data["next_actions"]] == [
        "monitor_and_reinstruct",
        "fit_dual_band_hub",
    ]
    assert all(a["not_before"] is None and a["text"] for a in data["next_actions"])

    assert data["wan"] == {
        "established": True,
        "final_state": "connected",
        "deadline_s": 1800.0,
        "attempts": 1,
        "polls": 3,
        "reconnects": 0,
        "time_to_registered_s": 3.0,
        "time_to_connected_s": 6.0,
        "rssi_trail": [
            {"t_s": 0.0, "dbm": -95},
            {"t_s": 3.0, "dbm": -78},
            {"t_s": 6.0, "dbm": -76},
        ],
        "stuck_in_fault": False,
        "dropped_after_connect": False,
        "error": None,
    }
    esme, gsme, ihd = data["han"]["devices"]
    assert data["han"]["probed"] is True
    assert esme == {
        "eui64": "00-DB-12-34-56-78-90-A1",
        "type": "ESME",
        "required": True,
        "probed": True,
        "joined": True,
        "attempts": 1,
        "seconds_to_join": 10.0,
        "band": "2.4ghz",
        "rssi": -55,
        "lqi": 230,
        "last_failure": None,
        "survey": None,
        "survey_evidence": None,
    }
    assert (gsme["joined"], gsme["last_failure"], gsme["survey"]) == (
        False,
        "window_expired",
        "not_heard",
    )
    assert (ihd["required"], ihd["band"]) == (False, "868mhz")
    assert data["hub"] == {
        "eui64": "00-DB-12-34-56-78-90-A0",
        "hw_variant": "single_band",
        "wan_variant": "cellular",
        "csp_region": "central",
        "firmware": "CHSIM-2.4.1",
    }
    assert data["meter_type"]["supply"] == "single_phase"
    assert data["meter_type"]["available"] is True
    assert data["meter_type"]["source"] == "job"
    assert data["started_at"] == "2025-05-06T09:00:00Z"
    assert data["finished_at"] == "2025-05-06T09:12:00Z"
    assert data["gatewayd_version"] == __version__
    assert data["dcc_notice"] is None
    assert data["cancellation"] is None
    assert data["failure"] is None


def test_no_secrets_or_site_identifiers_are_published(job: Job) -> None:
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), wan=wan(), han=han(job))
    text = json.dumps(doc_for(run).model_dump(mode="json"))
    assert job.mpan is not None and job.mpan not in text
    assert job.mprn is not None and job.mprn not in text
    for device in job.devices:
        assert device.install_code.hex().upper() not in text.upper()


def test_installed_without_wan_lists_every_device_as_not_probed(job: Job) -> None:
    down = WanOutcome(
        established=False,
        final_state=WanState.FAULT,
        deadline_s=1800,
        attempts=4,
        reconnects=3,
        stuck_in_fault=True,
    )
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), wan=down, hub=hub())
    data = doc_for(run).model_dump(mode="json")
    assert data["outcome"] == "installed_no_wan"
    assert data["abort"] is None
    assert [a["action"] for a in data["next_actions"]] == ["replace_hub"]
    assert data["wan"]["final_state"] == "fault"
    assert data["han"]["probed"] is False
    assert [(d["eui64"], d["probed"], d["joined"]) for d in data["han"]["devices"]] == [
        (str(d.eui64), False, False) for d in job.devices
    ]


def test_meter_type_abort_has_no_wan_section() -> None:
    job = load_job(JOBS / "ct-site.toml")
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN))
    data = doc_for(run).model_dump(mode="json")
    assert data["outcome"] == "aborted"
    assert data["abort"]["code"] == "SMETS_METER_TYPE_NOT_AVAILABLE"
    assert data["wan"] is None
    assert data["hub"] is None
    assert data["meter_type"]["ct"] is True
    assert data["meter_type"]["needed_variant"] is None


def test_dcc_notice_is_published_with_its_dates(job: Job) -> None:
    resume = datetime(2025, 5, 8, 8, 0, tzinfo=UTC)
    notice = DccNotice(received_at=START + timedelta(minutes=5), not_before=resume, text="outage")
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), dcc_notice=notice)
    data = doc_for(run).model_dump(mode="json")
    assert data["dcc_notice"] == {
        "received_at": "2025-05-06T09:05:00Z",
        "not_before": "2025-05-08T08:00:00Z",
        "reference": None,
        "text": "outage",
    }
    (action,) = data["next_actions"]
    assert action["action"] == "rebook_when_dcc_resumes"
    assert action["not_before"] == "2025-05-08T08:00:00Z"


def test_cancelled_and_failed_runs_say_why(job: Job) -> None:
    mt = check_meter_type(job, VAN)
    cancelled = doc_for(RunFacts(job=job, meter_type=mt, ending=Cancelled("back_office", "moved")))
    assert cancelled.model_dump(mode="json")["cancellation"] == {
        "by": "back_office",
        "reason": "moved",
    }
    assert cancelled.next_actions == []
    failed = doc_for(RunFacts(job=job, meter_type=mt, ending=Failed("port vanished", "wan")))
    data = failed.model_dump(mode="json")
    assert data["outcome"] == "failed"
    assert data["failure"] == {"reason": "port vanished", "stage": "wan"}
    assert data["next_actions"] == []


def test_unlisted_hub_numbers_are_published_as_unknown(job: Job) -> None:
    odd_hub = HubFacts(eui64=Eui64.parse("00-DB-12-34-56-78-90-A0"), hw_variant=7)
    odd_wan = WanOutcome(established=False, final_state=9, deadline_s=60)
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), wan=odd_wan, hub=odd_hub)
    data = doc_for(run).model_dump(mode="json")
    assert data["hub"]["hw_variant"] == "unknown(7)"
    assert data["wan"]["final_state"] == "unknown(9)"


def test_the_document_round_trips_through_json(job: Job) -> None:
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), wan=wan(), han=han(job))
    doc = doc_for(run)
    again = ResultDocument.model_validate_json(doc.model_dump_json())
    assert again == doc


def test_readers_reject_an_unknown_schema(job: Job) -> None:
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), ending=Cancelled("installer"))
    data = doc_for(run).model_dump(mode="json")
    data["schema"] = "gatewayd.result/99"
    with pytest.raises(ValidationError):
        ResultDocument.model_validate(data)


def test_times_must_be_aware_and_in_order(job: Job) -> None:
    run = RunFacts(job=job, meter_type=check_meter_type(job, VAN), ending=Cancelled("installer"))
    verdict = decide(run)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_result(run, verdict, started_at=datetime(2025, 1, 1), finished_at=END)
    with pytest.raises(ValueError, match="before started_at"):
        build_result(run, verdict, started_at=END, finished_at=START)
