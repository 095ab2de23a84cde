"""The verdict engine, table-driven: every row of the domain's abort table and every
edge-case rule, each under both supplier policies; and, on generated runs, that a verdict
depends on its run alone."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.config.job import Device, Job, Policy, Supply, parse_job
from gatewayd.engine.meter_type import ElectricityVariant, check_meter_type
from gatewayd.engine.next_actions import Action
from gatewayd.engine.outcomes import (
    Cancelled,
    DccNotice,
    DeviceOutcome,
    Failed,
    HanOutcome,
    HubFacts,
    JoinFailure,
    RunFacts,
    SurveyEvidence,
    SurveyJudgement,
    WanOutcome,
)
from gatewayd.engine.verdict import (
    ABORT_TITLES,
    Abort,
    AbortCode,
    Outcome,
    Stage,
    Verdict,
    VerdictInputError,
    decide,
)
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import Band, DeviceType, HwVariant, WanState

CODE = "3F1A9C0E5B7D2468ACE013579BDF0246"
ESME = "00-DB-12-34-56-78-90-A1"
GSME = "00-DB-12-34-56-78-90-A2"
IHD = "00-DB-12-34-56-78-90-A3"
ALL_VARIANTS = tuple(ElectricityVariant)
RESUME = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
NOTICE_AT = datetime(2025, 6, 1, 10, 30, tzinfo=UTC)

POLICIES = (Policy.INSTALL_AND_LEAVE, Policy.ABORT_ON_NO_WAN)

# --- building blocks ---------------------------------------------------------------


def make_job(
    policy: Policy,
    *,
    supply: str = "single_phase",
    fuels: tuple[str, ...] = ("electricity", "gas"),
    required: dict[str, bool] | None = None,
) -> Job:
    required = required or {}
    doc: dict[str, Any] = {"job_id": "JOB-T", "fuels": list(fuels), "policy": policy.value}
    devices: list[dict[str, Any]] = []
    if "electricity" in fuels:
        doc |= {"mpan": "1600123456785", "supply": supply}
        devices.append({"eui64": ESME, "type": "ESME", "install_code": CODE})
    if "gas" in fuels:
        doc["mprn"] = "7654321012"
        devices.append({"eui64": GSME, "type": "GSME", "install_code": CODE})
    devices.append({"eui64": IHD, "type": "IHD", "install_code": CODE})
    for dev in devices:
        if dev["type"] in required:
            dev["required"] = required[dev["type"]]
    doc["devices"] = devices
    return parse_job(doc)


def wan_up(**changes: Any) -> WanOutcome:
    base = WanOutcome(
        established=True,
        final_state=WanState.CONNECTED,
        deadline_s=1800,
        attempts=1,
        polls=4,
        time_to_registered_s=12.0,
        time_to_connected_s=40.0,
    )
    return replace(base, **changes)


def wan_down(**changes: Any) -> WanOutcome:
    base = WanOutcome(
        established=False,
        final_state=WanState.SEARCHING,
        deadline_s=1800,
        attempts=4,
        polls=60,
        reconnects=3,
    )
    return replace(base, **changes)


def wan_fault() -> WanOutcome:
    return wan_down(final_state=WanState.FAULT, stuck_in_fault=True)


def joined(eui: str, kind: DeviceType, required: bool) -> DeviceOutcome:
    return DeviceOutcome(
        eui64=Eui64.parse(eui),
        type=kind,
        required=required,
        probed=True,
        joined=True,
        attempts=1,
        seconds_to_join=20.0,
        band=Band.GHZ_2_4,
        rssi_dbm=-60,
        lqi=200,
    )


def failed_join(
    eui: str,
    kind: DeviceType,
    required: bool,
    why: JoinFailure | None,
    survey: SurveyJudgement | None = None,
) -> DeviceOutcome:
    return DeviceOutcome(
        eui64=Eui64.parse(eui),
        type=kind,
        required=required,
        probed=True,
        joined=False,
        attempts=3,
        last_failure=why,
        survey=survey,
    )


def han_all_joined(job: Job) -> HanOutcome:
    return HanOutcome(
        probed=True, devices=tuple(joined(str(d.eui64), d.type, d.required) for d in job.devices)
    )


def han_with(job: Job, *failures: DeviceOutcome) -> HanOutcome:
    """Every job device joined except those given."""
    failed = {f.eui64: f for f in failures}
    return HanOutcome(
        probed=True,
        devices=tuple(
            failed.get(d.eui64) or joined(str(d.eui64), d.type, d.required) for d in job.devices
        ),
    )


SINGLE_BAND = HubFacts(
    eui64=Eui64.parse("00-DB-12-34-56-78-90-A0"), hw_variant=HwVariant.SINGLE_BAND
)
DUAL_BAND = replace(SINGLE_BAND, hw_variant=HwVariant.DUAL_BAND)


def facts(
    job: Job,
    *,
    van: tuple[ElectricityVariant, ...] = ALL_VARIANTS,
    wan: WanOutcome | None = None,
    han: HanOutcome | None = None,
    hub: HubFacts | None = SINGLE_BAND,
    dcc: DccNotice | None = None,
    ending: Cancelled | Failed | None = None,
) -> RunFacts:
    return RunFacts(
        job=job,
        meter_type=check_meter_type(job, van),
        wan=wan,
        han=han,
        hub=hub,
        dcc_notice=dcc,
        ending=ending,
    )


def gsme_expired(survey: SurveyJudgement | None = None) -> DeviceOutcome:
    return failed_join(GSME, DeviceType.GSME, True, JoinFailure.WINDOW_EXPIRED, survey)


NOTICE = DccNotice(received_at=NOTICE_AT, not_before=RESUME, reference="DCC-INC-1")

# --- the table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    outcome: Outcome
    abort: AbortCode | None
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Policy], RunFacts]
    expect: Expect
    # Only the no-WAN rows differ by policy; None means "same as expect".
    expect_abort_on_no_wan: Expect | None = None

    def expected(self, policy: Policy) -> Expect:
        if policy is Policy.ABORT_ON_NO_WAN and self.expect_abort_on_no_wan is not None:
            return self.expect_abort_on_no_wan
        return self.expect


A = Action
MT = AbortCode.SMETS_METER_TYPE_NOT_AVAILABLE
WAN = AbortCode.UNABLE_TO_ESTABLISH_WAN
HAN = AbortCode.UNABLE_TO_ESTABLISH_HAN
ABORTED = Outcome.ABORTED
COMMISSIONED = Expect(Outcome.COMMISSIONED, None, ())
NO_WAN_IAL = Expect(Outcome.INSTALLED_NO_WAN, None, ())
NO_WAN_ABORT = Expect(ABORTED, WAN, (A.MONITOR_WAN_AND_REINSTRUCT,))
REBOOK = Expect(ABORTED, WAN, (A.REBOOK_WHEN_DCC_RESUMES,))
HAN_ABORT = Expect(ABORTED, HAN, (A.MONITOR_AND_REINSTRUCT,))
HAN_ABORT_DUAL = Expect(ABORTED, HAN, (A.MONITOR_AND_REINSTRUCT, A.FIT_DUAL_BAND_HUB))


def _full(job: Job, **kw: Any) -> RunFacts:
    """A run that got through both stages with everything joined, plus changes."""
    kw.setdefault("wan", wan_up())
    kw.setdefault("han", han_all_joined(job))
    return facts(job, **kw)


CASES: list[Case] = [
    # Row 1: SMETS Meter Type Not Available.
    Case(
        "meter-type/ct-site-gets-amr-only",
        lambda p: facts(make_job(p, supply="ct")),
        Expect(ABORTED, MT, (A.INSTALL_AMR,)),
    ),
    Case(
        "meter-type/ct-site-even-with-every-variant-and-good-probes",
        lambda p: _full(make_job(p, supply="ct")),
        Expect(ABORTED, MT, (A.INSTALL_AMR,)),
    ),
    Case(
        "meter-type/polyphase-not-in-van",
        lambda p: facts(make_job(p, supply="polyphase"), van=(ElectricityVariant.SINGLE_PHASE,)),
        Expect(ABORTED, MT, (A.WAIT_FOR_VARIANT, A.INSTALL_AMR)),
    ),
    Case(
        "meter-type/twin-element-not-in-van",
        lambda p: facts(make_job(p, supply="twin_element"), van=()),
        Expect(ABORTED, MT, (A.WAIT_FOR_VARIANT, A.INSTALL_AMR)),
    ),
    Case(
        "meter-type/single-phase-not-in-van",
        lambda p: facts(
            make_job(p), van=(ElectricityVariant.POLYPHASE, ElectricityVariant.TWIN_ELEMENT)
        ),
        Expect(ABORTED, MT, (A.WAIT_FOR_VARIANT, A.INSTALL_AMR)),
    ),
    Case(
        "meter-type/beats-a-dcc-notice",
        lambda p: facts(make_job(p, supply="ct"), dcc=NOTICE),
        Expect(ABORTED, MT, (A.INSTALL_AMR,)),
    ),
    Case(
        "meter-type/beats-a-cancellation",
        lambda p: facts(make_job(p, supply="ct"), ending=Cancelled(by="installer")),
        Expect(ABORTED, MT, (A.INSTALL_AMR,)),
    ),
    Case(
        "meter-type/not-checked-for-gas-only-job",
        lambda p: _full(make_job(p, fuels=("gas",)), van=()),
        COMMISSIONED,
    ),
    Case(
        "meter-type/fitting-variant-lets-the-job-go-on",
        lambda p: _full(make_job(p, supply="polyphase"), van=(ElectricityVariant.POLYPHASE,)),
        COMMISSIONED,
    ),
    # Row 2: Unable to Establish WAN, from a DCC notice (either policy).
    Case(
        "dcc-notice/wins-over-a-working-wan-and-han",
        lambda p: _full(make_job(p), dcc=NOTICE),
        REBOOK,
    ),
    Case(
        "dcc-notice/without-a-resume-time",
        lambda p: _full(make_job(p), dcc=DccNotice(received_at=NOTICE_AT)),
        REBOOK,
    ),
    Case(
        "dcc-notice/wins-over-no-wan",
        lambda p: facts(make_job(p), wan=wan_down(), dcc=NOTICE),
        REBOOK,
    ),
    Case(
        "dcc-notice/wins-over-a-han-failure",
        lambda p: facts(
            make_job(p), wan=wan_up(), han=han_with(make_job(p), gsme_expired()), dcc=NOTICE
        ),
        REBOOK,
    ),
    Case(
        "dcc-notice/before-any-probe-ran",
        lambda p: facts(make_job(p), dcc=NOTICE),
        REBOOK,
    ),
    Case(
        "dcc-notice/wins-over-a-failed-run",
        lambda p: facts(make_job(p), dcc=NOTICE, ending=Failed(reason="hub not answering")),
        REBOOK,
    ),
    Case(
        "dcc-notice/wins-over-a-cancellation",
        lambda p: facts(make_job(p), dcc=NOTICE, ending=Cancelled(by="installer")),
        REBOOK,
    ),
    Case(
        "dcc-notice/with-hub-stuck-in-fault-adds-replace-hub",
        lambda p: facts(make_job(p), wan=wan_fault(), dcc=NOTICE),
        Expect(ABORTED, WAN, (A.REBOOK_WHEN_DCC_RESUMES, A.REPLACE_HUB)),
    ),
    # Row 2: Unable to Establish WAN, from the deadline (policy decides).
    Case(
        "no-wan/still-searching-at-deadline",
        lambda p: facts(make_job(p), wan=wan_down()),
        NO_WAN_IAL,
        NO_WAN_ABORT,
    ),
    Case(
        "no-wan/registered-but-never-connected",
        lambda p: facts(make_job(p), wan=wan_down(final_state=WanState.REGISTERED)),
        NO_WAN_IAL,
        NO_WAN_ABORT,
    ),
    Case(
        "no-wan/connected-only-after-the-deadline",
        lambda p: facts(make_job(p), wan=wan_down(final_state=WanState.CONNECTED)),
        NO_WAN_IAL,
        NO_WAN_ABORT,
    ),
    Case(
        "no-wan/hub-stuck-in-fault-adds-replace-hub",
        lambda p: facts(make_job(p), wan=wan_fault()),
        Expect(Outcome.INSTALLED_NO_WAN, None, (A.REPLACE_HUB,)),
        Expect(ABORTED, WAN, (A.MONITOR_WAN_AND_REINSTRUCT, A.REPLACE_HUB)),
    ),
    Case(
        "no-wan/han-outcome-is-not-considered",
        lambda p: facts(make_job(p), wan=wan_down(), han=han_with(make_job(p), gsme_expired())),
        NO_WAN_IAL,
        NO_WAN_ABORT,
    ),
    Case(
        "no-wan/gas-only-job",
        lambda p: facts(make_job(p, fuels=("gas",)), wan=wan_down()),
        NO_WAN_IAL,
        NO_WAN_ABORT,
    ),
    Case(
        "wan/drop-after-connect-is-evidence-not-failure",
        lambda p: _full(make_job(p), wan=wan_up(dropped_after_connect=True)),
        COMMISSIONED,
    ),
    Case(
        "wan/connected-then-stuck-in-fault-still-commissioned-with-replace-hub",
        lambda p: _full(
            make_job(p),
            wan=wan_up(dropped_after_connect=True, stuck_in_fault=True, final_state=WanState.FAULT),
        ),
        Expect(Outcome.COMMISSIONED, None, (A.REPLACE_HUB,)),
    ),
    # Row 3: Unable to Establish HAN.
    Case("han/all-joined", lambda p: _full(make_job(p)), COMMISSIONED),
    Case(
        "han/gsme-window-expired-on-single-band-hub",
        lambda p: facts(make_job(p), wan=wan_up(), han=han_with(make_job(p), gsme_expired())),
        HAN_ABORT_DUAL,
    ),
    Case(
        "han/gsme-key-establishment-failed-no-dual-band",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(
                make_job(p),
                failed_join(GSME, DeviceType.GSME, True, JoinFailure.KEY_ESTABLISHMENT_FAILED),
            ),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-window-expired-on-dual-band-hub",
        lambda p: facts(
            make_job(p), wan=wan_up(), han=han_with(make_job(p), gsme_expired()), hub=DUAL_BAND
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-window-expired-survey-good",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), gsme_expired(SurveyJudgement.GOOD)),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-window-expired-survey-marginal",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), gsme_expired(SurveyJudgement.MARGINAL)),
        ),
        HAN_ABORT_DUAL,
    ),
    Case(
        "han/gsme-window-expired-survey-not-heard",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), gsme_expired(SurveyJudgement.NOT_HEARD)),
        ),
        HAN_ABORT_DUAL,
    ),
    Case(
        "han/gsme-window-expired-hub-hardware-unknown",
        lambda p: facts(
            make_job(p), wan=wan_up(), han=han_with(make_job(p), gsme_expired()), hub=None
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-window-expired-hub-variant-unlisted",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), gsme_expired()),
            hub=replace(SINGLE_BAND, hw_variant=9),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-lost-after-joining",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), failed_join(GSME, DeviceType.GSME, True, JoinFailure.LOST)),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/gsme-refused-by-hub",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(
                make_job(p), failed_join(GSME, DeviceType.GSME, True, JoinFailure.HUB_ERROR)
            ),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/esme-window-expired-never-dual-band",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(
                make_job(p),
                failed_join(ESME, DeviceType.ESME, True, JoinFailure.WINDOW_EXPIRED),
            ),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/esme-and-gsme-both-fail",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(
                make_job(p),
                failed_join(ESME, DeviceType.ESME, True, JoinFailure.KEY_ESTABLISHMENT_FAILED),
                gsme_expired(),
            ),
        ),
        HAN_ABORT_DUAL,
    ),
    Case(
        "han/required-device-missing-from-the-outcome",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=HanOutcome(
                probed=True,
                devices=tuple(
                    d for d in han_all_joined(make_job(p)).devices if d.type is not DeviceType.GSME
                ),
            ),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/optional-ihd-fails-is-reported-not-aborted",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(
                make_job(p), failed_join(IHD, DeviceType.IHD, False, JoinFailure.WINDOW_EXPIRED)
            ),
        ),
        COMMISSIONED,
    ),
    Case(
        "han/gsme-made-optional-by-the-job",
        lambda p: facts(
            make_job(p, required={"GSME": False}),
            wan=wan_up(),
            han=han_with(make_job(p, required={"GSME": False}), gsme_expired()),
        ),
        COMMISSIONED,
    ),
    Case(
        "han/ihd-made-required-by-the-job",
        lambda p: facts(
            make_job(p, required={"IHD": True}),
            wan=wan_up(),
            han=han_with(
                make_job(p, required={"IHD": True}),
                failed_join(IHD, DeviceType.IHD, True, JoinFailure.WINDOW_EXPIRED),
            ),
        ),
        HAN_ABORT,
    ),
    Case(
        "han/job-decides-required-not-the-outcome",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            # The probe wrongly marked the GSME optional; the job says it is required.
            han=han_with(make_job(p), replace(gsme_expired(), required=False)),
        ),
        HAN_ABORT_DUAL,
    ),
    # Endings that are not SMETS aborts.
    Case(
        "cancelled/by-installer-during-wan",
        lambda p: facts(make_job(p), ending=Cancelled(by="installer", reason="customer away")),
        Expect(Outcome.CANCELLED, None, ()),
    ),
    Case(
        "cancelled/by-back-office-after-a-han-failure",
        lambda p: facts(
            make_job(p),
            wan=wan_up(),
            han=han_with(make_job(p), gsme_expired()),
            ending=Cancelled(by="back_office"),
        ),
        Expect(Outcome.CANCELLED, None, ()),
    ),
    Case(
        "cancelled/with-hub-in-fault-owes-nothing",
        lambda p: facts(make_job(p), wan=wan_fault(), ending=Cancelled(by="installer")),
        Expect(Outcome.CANCELLED, None, ()),
    ),
    Case(
        "failed/kit-could-not-talk-to-its-hub",
        lambda p: facts(make_job(p), hub=None, ending=Failed(reason="no answer", stage="wan")),
        Expect(Outcome.FAILED, None, ()),
    ),
    Case(
        "failed/beats-a-no-wan-outcome",
        lambda p: facts(make_job(p), wan=wan_down(), ending=Failed(reason="port vanished")),
        Expect(Outcome.FAILED, None, ()),
    ),
]


@pytest.mark.parametrize(
    ("case", "policy"),
    [pytest.param(c, p, id=f"{c.id}[{p.value}]") for c in CASES for p in POLICIES],
)
def test_verdict_table(case: Case, policy: Policy) -> None:
    verdict = decide(case.build(policy))
    want = case.expected(policy)
    assert verdict.outcome is want.outcome
    assert (verdict.abort.code if verdict.abort else None) == want.abort
    assert tuple(a.action for a in verdict.next_actions) == want.actions


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_outcome_abort_code_and_action_appears_in_the_table() -> None:
    expects = [c.expected(p) for c in CASES for p in POLICIES]
    assert {e.outcome for e in expects} == set(Outcome)
    assert {e.abort for e in expects} == {*AbortCode, None}
    assert {a for e in expects for a in e.actions} == set(Action)


# --- details beyond the table ------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.value)
def test_abort_titles_are_the_industry_words(policy: Policy) -> None:
    assert ABORT_TITLES == {
        AbortCode.SMETS_METER_TYPE_NOT_AVAILABLE: "SMETS Meter Type Not Available",
        AbortCode.UNABLE_TO_ESTABLISH_WAN: "Unable to Establish WAN - Meter Not Installed",
        AbortCode.UNABLE_TO_ESTABLISH_HAN: "Unable to Establish HAN - Meter Not Installed",
    }
    verdict = decide(facts(make_job(policy, supply="ct")))
    assert verdict.abort is not None
    assert verdict.abort.title == "SMETS Meter Type Not Available"


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.value)
def test_meter_type_evidence(policy: Policy) -> None:
    van = (ElectricityVariant.SINGLE_PHASE,)
    verdict = decide(facts(make_job(policy, supply="twin_element"), van=van))
    assert verdict.stage is Stage.METER_TYPE
    assert verdict.abort is not None
    assert verdict.abort.evidence == {
        "supply": "twin_element",
        "source": "job",
        "ct": False,
        "needed_variant": "twin_element",
        "van_variants": ["single_phase"],
    }
    wait = verdict.next_actions[0]
    assert "twin-element" in wait.text


def test_meter_type_evidence_records_a_meter_that_contradicts_the_job() -> None:
    job = make_job(Policy.INSTALL_AND_LEAVE)
    mt = check_meter_type(job, (ElectricityVariant.SINGLE_PHASE,), meter_supply=Supply.CT)
    verdict = decide(RunFacts(job=job, meter_type=mt))
    assert verdict.abort is not None
    assert verdict.abort.evidence["source"] == "meter"
    assert verdict.abort.evidence["job_supply"] == "single_phase"
    assert [a.action for a in verdict.next_actions] == [Action.INSTALL_AMR]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.value)
def test_dcc_notice_evidence_and_rebook_date(policy: Policy) -> None:
    verdict = decide(facts(make_job(policy), wan=wan_up(), dcc=NOTICE))
    assert verdict.stage is Stage.DCC_NOTICE
    assert verdict.abort is not None
    assert verdict.abort.evidence["reason"] == "dcc_notice"
    assert verdict.abort.evidence["received_at"] == NOTICE_AT.isoformat()
    assert verdict.abort.evidence["not_before"] == RESUME.isoformat()
    assert verdict.abort.evidence["reference"] == "DCC-INC-1"
    assert verdict.abort.evidence["wan_established"] is True
    (rebook,) = verdict.next_actions
    assert rebook.not_before == RESUME
    assert RESUME.isoformat() in rebook.text


def test_dcc_notice_without_resume_time_has_no_not_before() -> None:
    verdict = decide(facts(make_job(Policy.INSTALL_AND_LEAVE), dcc=DccNotice(NOTICE_AT)))
    (rebook,) = verdict.next_actions
    assert rebook.not_before is None
    assert verdict.abort is not None
    assert verdict.abort.evidence["not_before"] is None
    assert verdict.abort.evidence["wan_established"] is None


def test_dcc_notice_keeps_a_cancellation_on_record() -> None:
    verdict = decide(
        facts(make_job(Policy.INSTALL_AND_LEAVE), dcc=NOTICE, ending=Cancelled(by="back_office"))
    )
    assert verdict.abort is not None
    assert verdict.abort.evidence["also_cancelled_by"] == "back_office"


def test_no_wan_abort_evidence() -> None:
    wan = wan_down(final_state=WanState.REGISTERED, deadline_s=1200, attempts=5, reconnects=2)
    verdict = decide(facts(make_job(Policy.ABORT_ON_NO_WAN), wan=wan))
    assert verdict.stage is Stage.WAN
    assert verdict.abort is not None
    assert verdict.abort.evidence == {
        "reason": "no_wan_by_deadline",
        "policy": "abort_on_no_wan",
        "final_state": "registered",
        "deadline_s": 1200,
        "attempts": 5,
        "reconnects": 2,
        "stuck_in_fault": False,
        "error": None,
    }


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.value)
def test_han_abort_evidence_lists_only_the_failing_required_devices(policy: Policy) -> None:
    job = make_job(policy)
    han = han_with(
        job,
        gsme_expired(SurveyJudgement.MARGINAL),
        failed_join(IHD, DeviceType.IHD, False, JoinFailure.WINDOW_EXPIRED),
    )
    verdict = decide(facts(job, wan=wan_up(), han=han))
    assert verdict.stage is Stage.HAN
    assert verdict.abort is not None
    assert verdict.abort.evidence == {
        "failing_devices": [
            {
                "eui64": GSME,
                "type": "GSME",
                "probed": True,
                "attempts": 3,
                "last_failure": "window_expired",
                "survey": "marginal",
            }
        ],
        "hub_hw_variant": "single_band",
        "dual_band_advice": [
            {
                "eui64": GSME,
                "basis": "survey_marginal",
                "text": f"The GSME {GSME} never joined within its join window on this "
                "single-band (2.4 GHz) hub, and an RF survey at the meter found the hub only "
                "marginal there.",
            }
        ],
    }


def test_a_required_device_missing_from_the_han_outcome_shows_as_not_probed() -> None:
    job = make_job(Policy.INSTALL_AND_LEAVE)
    han = HanOutcome(probed=True, devices=(joined(ESME, DeviceType.ESME, True),))
    verdict = decide(facts(job, wan=wan_up(), han=han))
    assert verdict.abort is not None
    failing = verdict.abort.evidence["failing_devices"]
    assert failing == [
        {
            "eui64": GSME,
            "type": "GSME",
            "probed": False,
            "attempts": 0,
            "last_failure": None,
            "survey": None,
        }
    ]


def test_every_next_action_has_text_and_no_placeholders() -> None:
    seen = set()
    for case in CASES:
        for policy in POLICIES:
            for action in decide(case.build(policy)).next_actions:
                seen.add(action.action)
                assert len(action.text) > 40
                assert "{" not in action.text
                assert action.text[0].isupper() and action.text.rstrip().endswith(".")
    assert seen == set(Action)


# --- purity: the verdict depends on its run and on nothing else ----------------------

SURVEY_AT_GSME = SurveyEvidence(
    position=GSME,
    taken_at=NOTICE_AT,
    judgement=SurveyJudgement.MARGINAL,
    reasons=("hub heard on 1 of 3 scans",),
    source="stored",
    hub_channel=15,
    scans=3,
    scans_heard=1,
)
SURVEYS = (None, *SurveyJudgement)


def _device_outcome(draw: st.DrawFn, device: Device) -> DeviceOutcome:
    if draw(st.booleans()):
        return joined(str(device.eui64), device.type, device.required)
    why = draw(st.sampled_from(JoinFailure))
    failed = failed_join(
        str(device.eui64), device.type, device.required, why, draw(st.sampled_from(SURVEYS))
    )
    return replace(failed, survey_evidence=draw(st.sampled_from([None, SURVEY_AT_GSME])))


def _mostly(usual: object, *rare: object) -> st.SearchStrategy[Any]:
    """``usual`` three times in four, else one of ``rare``: so that many runs reach the HAN."""
    return st.sampled_from([usual] * 3 * len(rare) + list(rare))


@st.composite
def runs(draw: st.DrawFn) -> RunFacts:
    """Any run the engine could hand over, and some it should not (decide then raises)."""
    fuels = draw(st.sampled_from([("electricity", "gas"), ("electricity",), ("gas",)]))
    job = make_job(
        draw(st.sampled_from(POLICIES)),
        supply=draw(_mostly("single_phase", *[s.value for s in Supply])),
        fuels=fuels,
        required=draw(st.dictionaries(st.sampled_from(["ESME", "GSME", "IHD"]), st.booleans())),
    )
    devices = tuple(_device_outcome(draw, d) for d in job.devices)
    van = draw(st.lists(st.sampled_from(ALL_VARIANTS), unique=True))
    return facts(
        job,
        van=draw(_mostly(ALL_VARIANTS, tuple(van))),
        wan=draw(st.sampled_from([wan_up(), wan_up(), wan_down(), wan_fault(), None])),
        han=draw(_mostly(HanOutcome(probed=True, devices=devices), None)),
        hub=draw(st.sampled_from([SINGLE_BAND, DUAL_BAND, None])),
        dcc=draw(_mostly(None, NOTICE, DccNotice(received_at=NOTICE_AT))),
        ending=draw(_mostly(None, Cancelled(by="installer"), Failed(reason="no hub"))),
    )


def _verdict_or_error(run: RunFacts) -> Verdict | str:
    try:
        return decide(run)
    except VerdictInputError as exc:
        return f"VerdictInputError: {exc}"


def _scribble(value: object) -> None:
    """Empty every dict and list inside a verdict's evidence, as a careless caller might."""
    if isinstance(value, dict):
        for item in value.values():
            _scribble(item)
        value.clear()
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.clear()


@given(runs(), st.lists(runs(), max_size=3))
def test_decide_depends_on_its_run_and_nothing_else(run: RunFacts, others: list[RunFacts]) -> None:
    before = copy.deepcopy(run)
    first = _verdict_or_error(run)
    expected = copy.deepcopy(first)
    # The caller owns the verdict it got: changing it must not reach a later one.
    if isinstance(first, Verdict) and first.abort is not None:
        _scribble(first.abort.evidence)
    # Other runs in between (same job id, other facts) must leave no trace either.
    for other in others:
        _verdict_or_error(other)
    again = _verdict_or_error(copy.deepcopy(run))
    assert run == before, "decide changed the run it was given"
    assert again == expected


@given(st.sampled_from(CASES), st.sampled_from(POLICIES), st.lists(runs(), min_size=1, max_size=3))
def test_the_table_holds_whatever_was_decided_before(
    case: Case, policy: Policy, earlier: list[RunFacts]
) -> None:
    # The table is a reference decide cannot bend: a verdict kept from an earlier run
    # (all share one job id) would show here, where comparing decide with itself would not.
    for run in earlier:
        _verdict_or_error(run)
    verdict = decide(case.build(policy))
    want = case.expected(policy)
    assert verdict.outcome is want.outcome
    assert (verdict.abort.code if verdict.abort else None) == want.abort
    assert tuple(a.action for a in verdict.next_actions) == want.actions


def test_a_run_without_a_wan_outcome_is_a_caller_bug() -> None:
    with pytest.raises(VerdictInputError, match="WAN"):
        decide(facts(make_job(Policy.INSTALL_AND_LEAVE)))


def test_an_established_wan_without_a_han_outcome_is_a_caller_bug() -> None:
    job = make_job(Policy.INSTALL_AND_LEAVE)
    with pytest.raises(VerdictInputError, match="HAN"):
        decide(facts(job, wan=wan_up()))
    with pytest.raises(VerdictInputError, match="HAN"):
        decide(facts(job, wan=wan_up(), han=HanOutcome.not_probed(job.devices)))


def test_abort_and_aborted_go_together() -> None:
    with pytest.raises(ValueError, match="abort"):
        Verdict(Outcome.COMMISSIONED, Abort(AbortCode.UNABLE_TO_ESTABLISH_HAN), (), Stage.HAN)
    with pytest.raises(ValueError, match="abort"):
        Verdict(Outcome.ABORTED, None, (), Stage.HAN)


def test_outcome_values_are_the_published_words() -> None:
    assert [o.value for o in Outcome] == [
        "commissioned",
        "installed_no_wan",
        "aborted",
        "cancelled",
        "failed",
    ]
    assert [a.value for a in Action] == [
        "wait_for_variant",
        "install_amr",
        "rebook_when_dcc_resumes",
        "monitor_wan_and_reinstruct",
        "monitor_and_reinstruct",
        "fit_dual_band_hub",
        "replace_hub",
    ]
