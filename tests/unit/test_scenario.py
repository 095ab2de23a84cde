"""Scenario files: the shipped ones load; every mistake names file, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import Cmd, HwVariant, RegState, StartReason, WanState
from gatewayd_sim.commshub.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    shipped_scenario,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "hw-fixtures" / "gatewayd_sim" / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))
EXPECTED = {
    "quick",
    "wan_late",
    "wan_never",
    "wan_fault_recovers",
    "wan_fault_persists",
    "gsme_second_window",
    "gsme_never_single_band",
    "gsme_never_dual_band",
    "gsme_key_failure",
    "ihd_fails",
    "cable_pull_han",
    "restart_han",
    "noisy",
    "silent_han",
    "silent_wan",
}
JOB_DEVICES = {
    Eui64.parse("00-DB-12-34-56-78-90-A1"),
    Eui64.parse("00-DB-12-34-56-78-90-A2"),
    Eui64.parse("00-DB-12-34-56-78-90-A3"),
}


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="site.toml")
    return str(caught.value)


def test_every_expected_scenario_is_shipped() -> None:
    assert {p.stem for p in SHIPPED} == EXPECTED
    assert shipped_scenario("quick") == shipped_scenario("quick.toml") == SCENARIOS / "quick.toml"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_loads_with_a_header_and_the_job_devices(path: Path) -> None:
    scenario = load_scenario(path)
    assert path.read_text().startswith("# ")
    assert scenario.hub.eui64 == Eui64.parse("00-DB-12-34-56-78-90-A0")
    assert {d.eui64 for d in scenario.han.devices} == JOB_DEVICES


def test_a_few_shipped_stories() -> None:
    never = load_scenario(SCENARIOS / "wan_never.toml").wan
    assert {s.wan_state for s in never.timeline} <= {WanState.SEARCHING, None}
    persists = load_scenario(SCENARIOS / "wan_fault_persists.toml").wan
    assert persists.timeline_for_reconnect(1)[-1].wan_state is WanState.FAULT
    recovers = load_scenario(SCENARIOS / "wan_fault_recovers.toml").wan
    assert recovers.timeline_for_reconnect(1)[-1].wan_state is WanState.CONNECTED
    dual = load_scenario(SCENARIOS / "gsme_never_dual_band.toml")
    assert dual.hub.hw is HwVariant.DUAL_BAND and dual.hub.subghz_channel == 3
    noisy = load_scenario(SCENARIOS / "noisy.toml").faults
    assert noisy.busy[0].cmd is Cmd.DEVICE_LOG_ADD and noisy.duplicate_events
    restart = load_scenario(SCENARIOS / "restart_han.toml").faults.restart[0]
    assert restart.start_reason is StartReason.WATCHDOG
    pull = load_scenario(SCENARIOS / "cable_pull_han.toml").faults.cable_pull[0]
    assert (pull.at, pull.for_s) == (50, 90)


def test_an_empty_scenario_gets_defaults() -> None:
    scenario = parse_scenario("")
    assert scenario.sim.speed == 50
    assert scenario.wan.timeline[-1].wan_state is WanState.CONNECTED
    assert scenario.hub.subghz_channel is None


def test_reg_names_and_numbers_and_unknown_rssi() -> None:
    scenario = parse_scenario(
        '[wan]\ntimeline = [{ at = 0, reg = "roaming", rssi = "unknown" }, { at = 1, reg = 9 }]'
    )
    assert scenario.wan.timeline[0].reg == RegState.REGISTERED_ROAMING
    assert scenario.wan.timeline[0].rssi == 127
    assert scenario.wan.timeline[1].reg == 9  # unlisted values pass on as numbers


def test_unknown_key_is_named_with_its_path() -> None:
    message = error_of("[hub]\ncolour = 'grey'\n")
    assert message == "site.toml: hub.colour: unknown key"


def test_bad_enum_in_a_timeline_names_the_step() -> None:
    message = error_of(
        '[wan]\ntimeline = [{ at = 0, state = "searching" }, { at = 5, state = "online" }]'
    )
    assert message.startswith("site.toml: wan.timeline[1].state: ")
    assert "'connected'" in message and "'online'" in message


def test_missing_required_key() -> None:
    message = error_of("[[han.devices]]\nbehaviour = 'never'\n")
    assert message == "site.toml: han.devices[0].eui64: required key is missing"


def test_bad_eui64_says_what_the_label_form_is() -> None:
    message = error_of('[hub]\neui64 = "00DB12345678"\n')
    assert message.startswith("site.toml: hub.eui64: ")
    assert "00-DB-12-34-56-78-90-A0" in message


def test_out_of_range_values() -> None:
    assert error_of("[hub]\nhan_channel = 27\n").startswith("site.toml: hub.han_channel: ")
    assert "wan.timeline[0].rssi" in error_of("[wan]\ntimeline = [{ at = 0, rssi = 5 }]")
    assert "sim.speed" in error_of("[sim]\nspeed = 0\n")
    assert "faults.corrupt" in error_of("[faults]\ncorrupt = 1.5\n")


def test_timeline_out_of_order() -> None:
    message = error_of("[wan]\ntimeline = [{ at = 10 }, { at = 5 }]")
    assert message.startswith("site.toml: wan.timeline[1].at: steps must be in time order")


def test_868mhz_device_needs_a_dual_band_hub() -> None:
    message = error_of('[[han.devices]]\neui64 = "00-DB-12-34-56-78-90-A2"\nband = "868mhz"\n')
    assert message.startswith("site.toml: han.devices[0].band: 868mhz needs a dual band hub")
    assert "subghz" in error_of("[hub]\nhan_subghz_channel = 2\n")


def test_duplicate_device() -> None:
    message = error_of(
        '[[han.devices]]\neui64 = "00-DB-12-34-56-78-90-A2"\n'
        '[[han.devices]]\neui64 = "00-db-12-34-56-78-90-a2"\n'
    )
    assert message.startswith("site.toml: han.devices[1].eui64: ")
    assert "han.devices[0]" in message


def test_key_that_does_not_fit_the_behaviour() -> None:
    message = error_of(
        '[[han.devices]]\neui64 = "00-DB-12-34-56-78-90-A2"\nbehaviour = "never"\n'
        "join_after_s = 5\n"
    )
    assert message.startswith("site.toml: han.devices[0].join_after_s: only used with")


def test_fault_command_names_are_checked() -> None:
    message = error_of('[faults]\nbusy = [{ cmd = "GET_WEATHER", count = 1 }]\n')
    assert message.startswith("site.toml: faults.busy[0].cmd: 'GET_WEATHER' is not a command")
    message = error_of("[faults]\ncable_pull = [{ at = 5, for_s = 3 }]\n")
    assert "faults.cable_pull[0].for: required key is missing" in message


def test_several_problems_are_all_reported_without_pydantic_noise() -> None:
    message = error_of("[hub]\nregion = 'east'\n[sim]\nseed = 'x'\n")
    lines = message.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["hub.region", "sim.seed"]
    assert "pydantic" not in message and "errors.pydantic.dev" not in message


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[wan\n")
    with pytest.raises(ScenarioError, match=r"broken\.toml: not valid TOML"):
        load_scenario(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nowhere\.toml: cannot read"):
        load_scenario(tmp_path / "nowhere.toml")


def test_banner_must_be_ascii_and_at_most_2_kib() -> None:
    assert error_of('[hub]\nbanner = "Café"\n').startswith("site.toml: hub.banner: ")
    assert "hub.banner" in error_of(f'[hub]\nbanner = "{"x" * 2049}"\n')
    banner = parse_scenario('[hub]\nbanner = "one\\ntwo\\n"\n').hub.banner_bytes()
    assert banner == b"one\r\ntwo\r\n"


def test_a_silence_starts_at_a_time_or_after_a_command() -> None:
    silent = load_scenario(SCENARIOS / "silent_han.toml").faults.silent[0]
    assert silent.after == Cmd.DEVICE_LOG_ADD and silent.count == 3 and silent.at is None
    assert "exactly one of 'at'" in error_of("[faults]\nsilent = [{ at = 5, after = 'PING' }]\n")
    assert "exactly one of 'at'" in error_of("[faults]\nsilent = [{ count = 2 }]\n")
