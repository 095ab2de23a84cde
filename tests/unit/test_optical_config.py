"""The kit config's [optical] table, and what the meter reading does to the meter type check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Job, Supply, parse_job
from gatewayd.config.kit import parse_kit_config
from gatewayd.engine.meter_arrangement import MeterReadingFacts
from gatewayd.engine.meter_type import ArrangementSource, ElectricityVariant, check_meter_type

HUB = {"port": "/dev/ttyUSB0"}


def kit(optical: dict[str, Any]) -> Any:
    return parse_kit_config({"hub": HUB, "optical": optical}, source="kit.toml")


def test_optical_defaults() -> None:
    cfg = kit({"port": "/dev/ttyUSB1"}).optical
    assert cfg is not None
    assert (cfg.wake_up, cfg.baud_switch, cfg.max_baudrate, cfg.rules) == (
        False,
        True,
        19200,
        None,
    )
    assert parse_kit_config({"hub": HUB}).optical is None


@pytest.mark.parametrize(
    ("optical", "where", "reason"),
    [
        ({}, "optical.port", "required"),
        ({"port": "p", "max_baudrate": 1000}, "optical.max_baudrate", "not an IEC 62056-21"),
        ({"port": "p", "device_address": "a/b"}, "optical.device_address", ""),
        ({"port": "p", "speed": 1}, "optical.speed", ""),
        ({"port": "p", "rules": "/nonexistent/rules.toml"}, "optical.rules", "not usable"),
    ],
)
def test_bad_optical_tables_name_the_key(optical: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        kit(optical)
    text = str(info.value)
    assert f"kit.toml: {where}" in text and reason in text


def test_a_rules_file_is_checked_when_the_kit_config_loads(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[registers]\nL1 = ["32.7"]\nL2 = []\nL3 = []\n[[rules]]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"optical\.rules"):
        kit({"port": "p", "rules": str(rules)})


def job(supply: str) -> Job:
    return parse_job(
        {
            "job_id": "J1",
            "fuels": ["electricity"],
            "mpan": "1600123456785",
            "supply": supply,
            "devices": [
                {
                    "eui64": "00-DB-12-34-56-78-90-A1",
                    "type": "ESME",
                    "install_code": "3F1A9C0E5B7D2468ACE013579BDF0246",
                }
            ],
        }
    )


VAN = tuple(ElectricityVariant)


def test_meter_reading_wins_and_the_mismatch_has_a_note() -> None:
    meter = MeterReadingFacts(read=True, supply=Supply.POLYPHASE, manufacturer="LGZ")
    mt = check_meter_type(job("single_phase"), VAN, meter=meter)
    assert (mt.supply, mt.source, mt.mismatch) == (Supply.POLYPHASE, ArrangementSource.METER, True)
    assert mt.meter is meter
    assert mt.note is not None and "polyphase" in mt.note and "single_phase" in mt.note


def test_unread_meter_leaves_the_job_value_with_the_reason() -> None:
    meter = MeterReadingFacts(read=False, error="identification: no answer")
    mt = check_meter_type(job("twin_element"), VAN, meter=meter)
    assert (mt.supply, mt.source, mt.mismatch) == (
        Supply.TWIN_ELEMENT,
        ArrangementSource.JOB,
        False,
    )
    assert mt.note is not None and "no answer" in mt.note and "twin_element" in mt.note


def test_unknown_arrangement_leaves_the_job_value() -> None:
    mt = check_meter_type(job("polyphase"), VAN, meter=MeterReadingFacts(read=True))
    assert mt.source is ArrangementSource.JOB and mt.supply is Supply.POLYPHASE
    assert mt.note is not None and "does not show" in mt.note


def test_agreeing_meter_has_no_note() -> None:
    meter = MeterReadingFacts(read=True, supply=Supply.SINGLE_PHASE)
    mt = check_meter_type(job("single_phase"), VAN, meter=meter)
    assert mt.source is ArrangementSource.METER and not mt.mismatch and mt.note is None


def test_ct_meter_makes_the_check_fail() -> None:
    meter = MeterReadingFacts(read=True, supply=Supply.CT)
    mt = check_meter_type(job("single_phase"), VAN, meter=meter)
    assert mt.is_ct and not mt.available and mt.mismatch
