"""The job model: keys, the MPAN check digit, consistency rules, and readable errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import (
    Fuel,
    Job,
    Policy,
    Supply,
    load_job,
    mpan_check_digit,
    parse_job,
)
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import DeviceType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
ESME = "00-DB-12-34-56-78-90-A1"
GSME = "00-DB-12-34-56-78-90-A2"
IHD = "00-DB-12-34-56-78-90-A3"
CODE = "3F1A9C0E5B7D2468ACE013579BDF0246"
VALID_MPAN = "1600123456785"


def dual_fuel(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "job_id": "JOB-1",
        "fuels": ["electricity", "gas"],
        "mpan": VALID_MPAN,
        "mprn": "7654321012",
        "supply": "single_phase",
        "devices": [
            {"eui64": ESME, "type": "ESME", "install_code": CODE},
            {"eui64": GSME, "type": "GSME", "install_code": CODE},
            {"eui64": IHD, "type": "IHD", "install_code": CODE},
        ],
    }
    doc.update(changes)
    return doc


def problems(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_job(doc, source="job.toml")
    return {p.path: p.reason for p in info.value.problems}


# --- a good job --------------------------------------------------------------------


def test_dual_fuel_job_parses_into_typed_values() -> None:
    job = parse_job(dual_fuel())
    assert job.job_id == "JOB-1"
    assert job.fuels == (Fuel.ELECTRICITY, Fuel.GAS)
    assert job.supply is Supply.SINGLE_PHASE
    assert job.policy is Policy.INSTALL_AND_LEAVE
    esme, gsme, ihd = job.devices
    assert esme.eui64 == Eui64.parse(ESME)
    assert esme.type is DeviceType.ESME
    assert esme.install_code == bytes.fromhex(CODE)
    assert len(esme.install_code) == 16
    assert (esme.required, gsme.required, ihd.required) == (True, True, False)
    assert job.required_devices == (esme, gsme)
    assert job.device(Eui64.parse(IHD)) is ihd


def test_fuels_default_to_both() -> None:
    doc = dual_fuel()
    del doc["fuels"]
    assert parse_job(doc).fuels == (Fuel.ELECTRICITY, Fuel.GAS)


@pytest.mark.parametrize("kind", ["IHD", "PPMID", "HCALCS", "CAD"])
def test_optional_types_can_be_made_required(kind: str) -> None:
    doc = dual_fuel()
    doc["devices"][2] = {"eui64": IHD, "type": kind, "install_code": CODE, "required": True}
    assert parse_job(doc).devices[2].required is True


def test_a_meter_can_be_made_optional() -> None:
    doc = dual_fuel()
    doc["devices"][1]["required"] = False
    assert parse_job(doc).devices[1].required is False


def test_device_type_is_read_case_insensitively() -> None:
    doc = dual_fuel()
    doc["devices"][2]["type"] = "ihd"
    assert parse_job(doc).devices[2].type is DeviceType.IHD


def test_install_code_never_shows_in_the_repr() -> None:
    job = parse_job(dual_fuel())
    assert CODE not in repr(job)
    assert CODE.lower() not in repr(job).lower()


def test_mpan_with_spaces_is_normalised() -> None:
    assert parse_job(dual_fuel(mpan="16 0012 3456 785")).mpan == VALID_MPAN


def test_a_job_round_trips_through_json() -> None:
    job = parse_job(dual_fuel(timing={"wan_deadline_s": 600}))
    text = json.dumps(job.model_dump(mode="json"))
    again = parse_job(json.loads(text), source="mqtt")
    assert again == job


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_every_example_job_loads(path: Path) -> None:
    assert isinstance(load_job(path), Job)


def test_example_dual_fuel_job_has_the_documented_devices() -> None:
    job = load_job(EXAMPLES / "dual-fuel.toml")
    assert [(str(d.eui64), d.type.name) for d in job.devices] == [
        (ESME, "ESME"),
        (GSME, "GSME"),
        (IHD, "IHD"),
    ]


# --- MPAN check digit (property) -----------------------------------------------------

twelve_digits = st.text(alphabet="0123456789", min_size=12, max_size=12)


@given(twelve_digits)
def test_any_twelve_digits_with_their_check_digit_are_accepted(first: str) -> None:
    mpan = first + str(mpan_check_digit(first))
    assert parse_job(dual_fuel(mpan=mpan)).mpan == mpan


@given(twelve_digits, st.integers(1, 9))
def test_any_other_last_digit_is_rejected(first: str, offset: int) -> None:
    wrong = (mpan_check_digit(first) + offset) % 10
    found = problems(dual_fuel(mpan=first + str(wrong)))
    assert "check digit" in found["mpan"]


@pytest.mark.parametrize(
    ("first", "digit"),
    [
        # 1*3+2*5+3*7+4*13+5*17+6*19+7*23+8*29+9*31+0*37+1*41+2*43 = 1084; 1084 % 11 = 6
        ("123456789012", 6),
        # 1*3 + 4*43 = 175; 175 % 11 = 10; 10 % 10 = 0
        ("100000000004", 0),
        # 1*3+6*5+1*17+2*19+3*23+4*29+5*31+6*37+7*41+8*43 = 1281; 1281 % 11 = 5
        ("160012345678", 5),
    ],
)
def test_check_digit_worked_examples(first: str, digit: int) -> None:
    assert mpan_check_digit(first) == digit
    assert parse_job(dual_fuel(mpan=first + str(digit))).mpan == first + str(digit)


@given(twelve_digits)
def test_check_digit_matches_the_published_rule(first: str) -> None:
    primes = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43]
    total = 0
    for position, prime in enumerate(primes):
        total += int(first[position]) * prime
    assert mpan_check_digit(first) == (total % 11) % 10


@pytest.mark.parametrize(
    ("mpan", "reason"),
    [
        ("160012345678", "13 digits"),
        ("16001234567851", "13 digits"),
        ("16001234567a5", "13 digits"),
        (1600123456785, "quoted string"),
    ],
)
def test_malformed_mpan_is_rejected(mpan: object, reason: str) -> None:
    assert reason in problems(dual_fuel(mpan=mpan))["mpan"]


# --- single keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "reason"),
    [
        ({"job_id": "has space"}, "job_id", "MQTT topic level"),
        ({"job_id": "a/b"}, "job_id", "MQTT topic level"),
        ({"job_id": "x" * 65}, "job_id", "1 to 64"),
        ({"job_id": ""}, "job_id", "1 to 64"),
        ({"fuels": []}, "fuels", "at least one fuel"),
        ({"fuels": ["electricity", "electricity"]}, "fuels", "twice"),
        ({"fuels": ["electricity", "oil"]}, "fuels[1]", "'oil'"),
        ({"mprn": "12345"}, "mprn", "6 to 10 digits"),
        ({"mprn": "12345678901"}, "mprn", "6 to 10 digits"),
        ({"mprn": 1234567}, "mprn", "quoted string"),
        ({"supply": "three_phase"}, "supply", "'three_phase'"),
        ({"policy": "abort"}, "policy", "'abort'"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"timing": {"wan_deadline_s": 0}}, "timing.wan_deadline_s", "greater than 0"),
        ({"timing": {"join_window_s": 3601}}, "timing.join_window_s", "3600"),
        ({"timing": {"join_attempts": 0}}, "timing.join_attempts", "greater than or equal"),
        (
            {"timing": {"han_deadline_s": 60, "join_window_s": 120}},
            "timing.han_deadline_s",
            "shorter than the join window",
        ),
        ({"timing": {"wan_deadline": 60}}, "timing.wan_deadline", "wan_deadline_s"),
    ],
)
def test_bad_keys_are_named_with_a_reason(changes: dict[str, Any], path: str, reason: str) -> None:
    found = problems(dual_fuel(**changes))
    assert path in found, found
    assert reason in found[path]


def test_policy_abort_on_no_wan_is_accepted() -> None:
    assert parse_job(dual_fuel(policy="abort_on_no_wan")).policy is Policy.ABORT_ON_NO_WAN


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("eui64", "00-DB-12-34-56-78-90", "label form"),
        ("eui64", "00:DB:12:34:56:78:90:A1", "label form"),
        ("eui64", 12345, "string"),
        ("type", "HHT", "hand-held terminal"),
        ("type", "WATER", "ESME, GSME, IHD"),
        ("type", 1, "by name"),
        ("install_code", "ABC", "32 hex digits"),
        ("install_code", "Z" * 32, "not all hex digits"),
        ("install_code", "0" * 32, "all zeros"),
        ("install_code", 5, "string of 32 hex digits"),
        ("required", "maybe", "boolean"),
    ],
)
def test_bad_device_fields_are_named(field: str, value: object, reason: str) -> None:
    doc = dual_fuel()
    doc["devices"][2][field] = value
    found = problems(doc)
    assert reason in found[f"devices[2].{field}"]


def test_install_code_is_not_echoed_in_errors() -> None:
    doc = dual_fuel()
    secret = "ABCDEF0123456789ABCDEF012345678"  # 31 digits
    doc["devices"][0]["install_code"] = secret
    with pytest.raises(ConfigError) as info:
        parse_job(doc, source="job.toml")
    assert secret not in str(info.value)


def test_missing_required_keys_are_listed_together() -> None:
    found = problems({"fuels": ["gas"]})
    assert found["job_id"] == "required key is missing"
    assert found["devices"] == "required key is missing"


def test_device_missing_keys_are_named() -> None:
    doc = dual_fuel()
    doc["devices"][0] = {"type": "ESME"}
    found = problems(doc)
    assert "devices[0].eui64" in found
    assert "devices[0].install_code" in found


# --- consistency rules -------------------------------------------------------------


def gas_only(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "job_id": "GAS-1",
        "fuels": ["gas"],
        "mprn": "123456",
        "devices": [{"eui64": GSME, "type": "GSME", "install_code": CODE}],
    }
    doc.update(changes)
    return doc


def elec_only(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "job_id": "ELEC-1",
        "fuels": ["electricity"],
        "mpan": VALID_MPAN,
        "supply": "polyphase",
        "devices": [{"eui64": ESME, "type": "ESME", "install_code": CODE}],
    }
    doc.update(changes)
    return doc


def test_single_fuel_jobs_parse() -> None:
    assert parse_job(gas_only()).mpan is None
    assert parse_job(elec_only()).mprn is None


@pytest.mark.parametrize(
    ("doc", "path", "reason"),
    [
        (dual_fuel(mpan=None), "mpan", "required when electricity"),
        (dual_fuel(supply=None), "supply", "required when electricity"),
        (dual_fuel(mprn=None), "mprn", "required when gas"),
        (gas_only(mpan=VALID_MPAN), "mpan", "electricity is not among the fuels"),
        (gas_only(supply="single_phase"), "supply", "electricity is not among the fuels"),
        (elec_only(mprn="123456"), "mprn", "gas is not among the fuels"),
        (
            gas_only(devices=[{"eui64": ESME, "type": "ESME", "install_code": CODE}]),
            "devices[0].type",
            "an ESME needs electricity",
        ),
        (
            elec_only(
                devices=[
                    {"eui64": ESME, "type": "ESME", "install_code": CODE},
                    {"eui64": GSME, "type": "GSME", "install_code": CODE},
                ]
            ),
            "devices[1].type",
            "a GSME needs gas",
        ),
        (
            gas_only(devices=[{"eui64": IHD, "type": "IHD", "install_code": CODE}]),
            "devices",
            "a GSME device is needed",
        ),
        (
            elec_only(
                devices=[
                    {"eui64": ESME, "type": "ESME", "install_code": CODE},
                    {"eui64": IHD, "type": "ESME", "install_code": CODE},
                ]
            ),
            "devices[1].type",
            "a second ESME",
        ),
        (
            elec_only(
                devices=[
                    {"eui64": ESME, "type": "ESME", "install_code": CODE},
                    {"eui64": ESME.lower(), "type": "IHD", "install_code": CODE},
                ]
            ),
            "devices[1].eui64",
            "already devices[0]",
        ),
        (
            elec_only(
                devices=[{"eui64": ESME, "type": "ESME", "install_code": CODE}]
                + [
                    {"eui64": f"00-DB-00-00-00-00-00-{i:02X}", "type": "CAD", "install_code": CODE}
                    for i in range(16)
                ]
            ),
            "devices",
            "holds 16",
        ),
    ],
    ids=[
        "mpan-missing",
        "supply-missing",
        "mprn-missing",
        "mpan-without-electricity",
        "supply-without-electricity",
        "mprn-without-gas",
        "esme-without-electricity",
        "gsme-without-gas",
        "gas-without-gsme",
        "two-esmes",
        "duplicate-eui64",
        "seventeen-devices",
    ],
)
def test_consistency_rules(doc: dict[str, Any], path: str, reason: str) -> None:
    found = problems(copy.deepcopy(doc))
    assert path in found, found
    assert reason in found[path]


def test_every_rule_problem_is_reported_at_once() -> None:
    doc = gas_only(mpan=VALID_MPAN, supply="ct", mprn=None)
    assert set(problems(doc)) >= {"mpan", "supply", "mprn"}


# --- files -------------------------------------------------------------------------


def test_load_job_reports_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('job_id = "J"\nfuels = ["gas"]\nmprn = "12"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_job(path)
    text = str(info.value)
    assert f"{path}: mprn: " in text
    assert f"{path}: devices: required key is missing" in text
    assert "Traceback" not in text
    assert "pydantic" not in text
    assert "errors.pydantic.dev" not in text


def test_load_job_reports_toml_syntax_errors(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text('job_id = "J\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"job\.toml: \(top level\): invalid TOML: .*line 1"):
        load_job(path)


def test_load_job_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_job(tmp_path / "nope.toml")


def test_load_job_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_bytes(b'job_id = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_job(path)


def test_parse_job_refuses_a_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a table"):
        parse_job([1, 2], source="mqtt")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('job_id = "J"\nfuels = ' + "[" * 100_000, "arrays or inline tables nest too deeply"),
        (
            'job_id = "J"\ntiming = ' + "{a = " * 5_000 + "1" + "}" * 5_000,
            "arrays or inline tables nest too deeply",
        ),
        (
            'job_id = "J"\n[timing.' + ".".join(["a"] * 20_000) + "]\n",
            "line 2 has 20000 dots, more than the 100 a line may have: its keys nest too deeply",
        ),
    ],
    ids=["arrays", "inline-tables", "dotted-key"],
)
def test_load_job_refuses_a_file_nested_too_deeply(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_job(path)
    assert str(info.value) == f"{path}: (top level): invalid TOML: {reason}"
