"""The survey's judgement, its thresholds in the kit config, the per-position store, and the
verdict that quotes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Policy
from gatewayd.config.kit import parse_kit_config
from gatewayd.config.survey import SurveyConfig
from gatewayd.engine.next_actions import Action
from gatewayd.engine.outcomes import DeviceOutcome, HubFacts, JoinFailure, SurveyJudgement
from gatewayd.engine.verdict import decide
from gatewayd.survey.judgement import SurveyDocument, evidence_from, judge
from gatewayd.survey.store import SurveyStore, position_key
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import DeviceType, HwVariant
from gatewayd_drivers.znp.commands import Beacon
from tests.unit.test_verdict import GSME, facts, failed_join, han_with, make_job, wan_up

HUB = Eui64.parse("00-DB-12-34-56-78-90-A0")
OTHER = Eui64.parse("00-DB-12-34-56-00-11-22")
TS = datetime(2025, 5, 6, 9, 0, tzinfo=UTC)
CFG = SurveyConfig()
QUIET = {ch: 10 for ch in range(11, 27)}


def beacon(lqi: int, ext: Eui64 = HUB, channel: int = 15, pan: int = 0x1A2B) -> Beacon:
    return Beacon(0, pan, channel, False, 1, 1, 2, 2, lqi, 0, 0, ext)


def survey(
    scans: list[list[Beacon]],
    energy: dict[int, int] | None = None,
    hub: Eui64 | None = HUB,
    position: str | None = GSME,
    taken_at: datetime = TS,
) -> SurveyDocument:
    return judge(
        scans, energy or QUIET, hub, CFG, taken_at=taken_at, position=position, radio="sim"
    )


# --- the judgement ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scans", "energy", "expected", "words"),
    [
        ([[beacon(200)], [beacon(190)]], None, SurveyJudgement.GOOD, "every scan at LQI 200"),
        ([[beacon(80)], [beacon(80)]], None, SurveyJudgement.GOOD, "LQI 80"),
        ([[beacon(79)], [beacon(60)]], None, SurveyJudgement.MARGINAL, "below the 80"),
        ([[beacon(200)], []], None, SurveyJudgement.MARGINAL, "only 1 of 2 scans"),
        ([[beacon(200)], [beacon(200)]], QUIET | {15: 150}, SurveyJudgement.MARGINAL, "busy"),
        ([[beacon(200, OTHER)], []], None, SurveyJudgement.NOT_HEARD, "no beacon"),
        ([[], []], None, SurveyJudgement.NOT_HEARD, "2 scan(s) of channels 11-26"),
    ],
    ids=["strong", "at-threshold", "weak", "intermittent", "busy", "neighbour-only", "silent"],
)
def test_judgement_rules(
    scans: list[list[Beacon]],
    energy: dict[int, int] | None,
    expected: SurveyJudgement,
    words: str,
) -> None:
    doc = survey(scans, energy)
    assert doc.judgement is expected
    assert any(words in r for r in doc.reasons), doc.reasons


def test_every_marginal_reason_is_given() -> None:
    doc = survey([[beacon(40)], []], QUIET | {15: 220})
    assert doc.judgement is SurveyJudgement.MARGINAL
    assert len(doc.reasons) == 3


def test_hub_is_found_by_extended_pan_id_whatever_the_pan_id_and_channel() -> None:
    doc = survey([[beacon(120, channel=25, pan=0x0042), beacon(200, OTHER, channel=15)]] * 2)
    assert doc.hub is not None and (doc.hub.channel, doc.hub.pan_id) == (25, 0x0042)
    assert [n.is_hub for n in doc.networks] == [False, True]  # sorted by channel


def test_without_a_hub_nothing_is_judged() -> None:
    doc = survey([[beacon(200)]], hub=None)
    assert doc.judgement is None and doc.hub is None
    assert evidence_from(doc, "stored") is None


def test_rssi_estimate_follows_the_lqi_scale() -> None:
    assert CFG.rssi_estimate(0) == -97 and CFG.rssi_estimate(255) == 10
    assert CFG.rssi_estimate(48) == -77


lqis = st.lists(st.one_of(st.none(), st.integers(0, 255)), min_size=1, max_size=4)


@given(lqis, st.integers(0, 255))
def test_judgement_invariants(per_scan: list[int | None], hub_energy: int) -> None:
    scans = [[beacon(lqi)] if lqi is not None else [beacon(200, OTHER)] for lqi in per_scan]
    doc = survey(scans, QUIET | {15: hub_energy})
    heard = [lqi for lqi in per_scan if lqi is not None]
    if not heard:
        assert doc.judgement is SurveyJudgement.NOT_HEARD and doc.hub is None
        return
    assert doc.hub is not None and doc.hub.lqi == max(heard)
    good = (
        len(heard) == len(per_scan) and max(heard) >= CFG.good_lqi and hub_energy < CFG.busy_energy
    )
    assert (doc.judgement is SurveyJudgement.GOOD) == good
    assert doc.judgement in (SurveyJudgement.GOOD, SurveyJudgement.MARGINAL)


# --- thresholds in the kit config --------------------------------------------------------


def test_survey_thresholds_come_from_the_kit_config() -> None:
    kit = parse_kit_config(
        {
            "hub": {"port": "/dev/ttyUSB0"},
            "radio": {"port": "/dev/ttyACM0"},
            "survey": {"good_lqi": 120, "busy_energy": 90, "channels": [15, 20, 25]},
        }
    )
    assert kit.radio is not None and kit.radio.port == "/dev/ttyACM0"
    assert (kit.survey.good_lqi, kit.survey.busy_energy) == (120, 90)
    assert kit.survey.channels == (15, 20, 25)


@pytest.mark.parametrize(
    ("survey_table", "words"),
    [
        ({"channels": [10, 15]}, "survey.channels[0]: 10 is not a 2.4 GHz Zigbee channel"),
        ({"channels": [15, 15]}, "survey.channels: a channel is listed twice"),
        ({"lqi_floor_dbm": -20, "lqi_ceiling_dbm": -30}, "lqi_ceiling_dbm: must be above"),
        ({"good_lqi": 0}, "survey.good_lqi"),
        ({"colour": "red"}, "survey.colour: unknown key"),
    ],
)
def test_bad_survey_settings_name_their_key(survey_table: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_kit_config({"hub": {"port": "/dev/ttyUSB0"}, "survey": survey_table}, "kit.toml")
    assert words in str(err.value)


# --- the store ------------------------------------------------------------------------------


def test_position_key_is_canonical() -> None:
    assert position_key("00-db-12-34-56-78-90-a2") == GSME
    assert position_key("at_gas_meter") == "at_gas_meter"
    with pytest.raises(ValueError, match="is not a position"):
        position_key("../etc")


def test_store_keeps_the_latest_per_position_and_checks_hub_and_age(tmp_path: Path) -> None:
    store = SurveyStore(tmp_path)
    old = survey([[beacon(200)]], taken_at=TS)
    new = survey([[]], taken_at=TS + timedelta(minutes=5))
    store.record(new)
    store.record(old)  # an older survey does not replace a newer one
    now = TS + timedelta(minutes=10)
    found = store.latest(GSME.lower(), hub_eui=HUB, now=now, max_age_s=3600)
    assert found is not None and found.judgement is SurveyJudgement.NOT_HEARD
    assert store.latest(GSME, hub_eui=OTHER, now=now, max_age_s=3600) is None
    assert store.latest(GSME, hub_eui=HUB, now=now + timedelta(hours=2), max_age_s=3600) is None
    assert store.latest("at_hub", hub_eui=HUB, now=now, max_age_s=3600) is None
    # Another process (a later `gatewayd probe`) reads it from the directory.
    again = SurveyStore(tmp_path).latest(GSME, hub_eui=HUB, now=now, max_age_s=3600)
    assert again == found


def test_an_unreadable_stored_survey_is_ignored(tmp_path: Path) -> None:
    (tmp_path / f"survey-{GSME}.json").write_text("{not json")
    assert SurveyStore(tmp_path).latest(GSME, hub_eui=HUB, now=TS, max_age_s=60) is None


# --- into the verdict ---------------------------------------------------------------------


def gsme_with(doc: SurveyDocument) -> DeviceOutcome:
    ev = evidence_from(doc, "stored")
    assert ev is not None
    d = failed_join(GSME, DeviceType.GSME, True, JoinFailure.WINDOW_EXPIRED, ev.judgement)
    return replace(d, survey_evidence=ev)


SINGLE = HubFacts(eui64=HUB, hw_variant=HwVariant.SINGLE_BAND)


@pytest.mark.parametrize(
    ("scans", "basis"),
    [([[]], "survey_not_heard"), ([[beacon(40)]], "survey_marginal"), ([[beacon(200)]], None)],
)
def test_the_survey_at_the_gas_meter_decides_and_explains_the_dual_band_advice(
    scans: list[list[Beacon]], basis: str | None
) -> None:
    job = make_job(Policy.INSTALL_AND_LEAVE)
    dev = gsme_with(survey(scans))
    verdict = decide(facts(job, wan=wan_up(), han=han_with(job, dev), hub=SINGLE))
    assert verdict.abort is not None
    evidence = verdict.abort.evidence
    (failing,) = evidence["failing_devices"]  # type: ignore[misc]
    assert failing["survey_evidence"]["position"] == GSME  # type: ignore[index]
    assert failing["survey_evidence"]["source"] == "stored"  # type: ignore[index]
    actions = [a.action for a in verdict.next_actions]
    if basis is None:
        assert Action.FIT_DUAL_BAND_HUB not in actions
        assert "dual_band_advice" not in evidence
    else:
        assert Action.FIT_DUAL_BAND_HUB in actions
        (advice,) = evidence["dual_band_advice"]  # type: ignore[misc]
        assert advice["basis"] == basis  # type: ignore[index]
        if basis == "survey_marginal":
            assert "LQI 40" in advice["text"]  # type: ignore[index,operator]


def test_a_dual_band_hub_gets_no_dual_band_advice_whatever_the_survey() -> None:
    job = make_job(Policy.INSTALL_AND_LEAVE)
    dual = HubFacts(eui64=HUB, hw_variant=HwVariant.DUAL_BAND)
    dev = gsme_with(survey([[]]))
    verdict = decide(facts(job, wan=wan_up(), han=han_with(job, dev), hub=dual))
    assert Action.FIT_DUAL_BAND_HUB not in [a.action for a in verdict.next_actions]
