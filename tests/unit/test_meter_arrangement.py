"""The data-driven mapping from a meter's readout to the supply arrangement."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Supply
from gatewayd.engine.meter_arrangement import SHIPPED_RULES, infer_arrangement, load_rules
from gatewayd_drivers.iec62056.readout import DataSet, parse_data_block
from gatewayd_sim.optical.profile import load_meter, shipped_meter


def readout(name: str) -> tuple[str, str, tuple[DataSet, ...]]:
    p = load_meter(shipped_meter(name))
    return p.identification[1:4], p.identification[5:], parse_data_block(p.data_block())


def sets(*lines: str) -> tuple[DataSet, ...]:
    return parse_data_block(("\r\n".join(lines) + "\r\n!\r\n").encode())


@pytest.mark.parametrize(
    ("meter", "supply", "rule"),
    [
        ("single_phase_credit", Supply.SINGLE_PHASE, "one live phase"),
        ("polyphase", Supply.POLYPHASE, "three live phases"),
        ("twin_element", Supply.TWIN_ELEMENT, "energy on two measuring elements"),
        ("two_rate_single_element", Supply.SINGLE_PHASE, "one live phase"),
        ("ct_operated", Supply.CT, "current transformer ratio above 1"),
        ("fixed_300", Supply.SINGLE_PHASE, "one live phase"),
        ("battery", Supply.SINGLE_PHASE, "one live phase"),
        ("no_phase_registers", None, None),
    ],
)
def test_shipped_meters_map_to_their_arrangement(
    meter: str, supply: Supply | None, rule: str | None
) -> None:
    manufacturer, ident, data = readout(meter)
    got = infer_arrangement(manufacturer, ident, data)
    assert (got.supply, got.rule) == (supply, rule)
    assert got.evidence


def test_polyphase_evidence_names_the_phases() -> None:
    got = infer_arrangement("LGZ", "ZMD3104", readout("polyphase")[2])
    assert got.phases == ("L1", "L2", "L3")
    assert got.elements == 1
    assert any("L2 live" in e and "52.7" in e for e in got.evidence)


def test_ct_ratio_evidence() -> None:
    got = infer_arrangement("LGZ", "ZMD4104CT", readout("ct_operated")[2])
    assert got.ct_ratio == 40 and got.vt_ratio == 1
    assert "CT ratio 200/5 = 40 (1-0:0.4.2*255)" in got.evidence


def test_a_ratio_of_one_is_whole_current() -> None:
    got = infer_arrangement("ABC", "X", sets("0.4.2(1)", "0.4.5(1)", "32.7(240*V)"))
    assert got.supply is Supply.SINGLE_PHASE and got.ct_ratio == 1


def test_vt_ratio_alone_is_transformer_operated() -> None:
    got = infer_arrangement(
        "ABC", "X", sets("0.4.3(11000*V)", "0.4.6(110*V)", "32.7(63.5*V)", "52.7(63.5*V)")
    )
    assert got.supply is Supply.CT and got.vt_ratio == 100


def test_dead_phases_do_not_count() -> None:
    got = infer_arrangement(
        "ABC", "X", sets("32.7(240.1*V)", "52.7(0.0*V)", "72.7(1.2*V)", "31.7(5*A)")
    )
    assert got.phases == ("L1",) and got.supply is Supply.SINGLE_PHASE
    assert any("L2" in e and "dead" in e for e in got.evidence)


def test_two_phases_cannot_be_told() -> None:
    got = infer_arrangement("ABC", "X", sets("32.7(240*V)", "52.7(240*V)"))
    assert got.supply is None and got.rule is None


def test_unreadable_ratio_is_evidence_not_a_crash() -> None:
    got = infer_arrangement("ABC", "X", sets("0.4.2(abc)", "32.7(240*V)"))
    assert got.supply is Supply.SINGLE_PHASE
    assert any("unreadable" in e for e in got.evidence)


def test_a_kit_rules_file_can_name_models(tmp_path: Path) -> None:
    text = SHIPPED_RULES.read_text()
    own = text.replace(
        "[[rules]]",
        '[[rules]]\nname = "ACME twin"\narrangement = "twin_element"\n'
        'manufacturer = "acm"\nidentification = "^TE"\n\n[[rules]]',
        1,
    )
    path = tmp_path / "rules.toml"
    path.write_text(own)
    rules = load_rules(path)
    data = sets("1.8.0(1*kWh)", "32.7(240*V)")
    assert infer_arrangement("ACM", "TE200", data, rules).supply is Supply.TWIN_ELEMENT
    assert infer_arrangement("ACM", "SP200", data, rules).supply is Supply.SINGLE_PHASE


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (("L1 = [", 'L1 = ["32.x", '), "registers.L1"),
        (('name = "one live phase"', 'name = "one live phase"\nidentification = "("'), "rules[4]"),
        (("phases = 1", "phases = 4"), "rules[4].phases"),
        (("ct_ratio_above = 1.0", ""), "rules[0]"),
        (('arrangement = "polyphase"', 'arrangement = "three_phase"'), "rules[3].arrangement"),
        (("min_phase_voltage = 50.0", "min_phase_voltage = 50.0\nextra = 1"), "registers.extra"),
    ],
)
def test_bad_rules_files_name_the_key(tmp_path: Path, change: tuple[str, str], where: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(SHIPPED_RULES.read_text().replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as info:
        load_rules(path)
    assert f"{path}: {where}" in str(info.value)


def test_registers_present_condition(tmp_path: Path) -> None:
    text = SHIPPED_RULES.read_text().replace(
        "[[rules]]",
        '[[rules]]\nname = "has a relay"\narrangement = "twin_element"\n'
        'registers_present = ["96.3.10", "32.7"]\n\n[[rules]]',
        1,
    )
    path = tmp_path / "rules.toml"
    path.write_text(text)
    rules = load_rules(path)
    with_relay = sets("96.3.10(1)", "32.7(240*V)")
    assert infer_arrangement("ABC", "X", with_relay, rules).rule == "has a relay"
    without = sets("32.7(240*V)")
    assert infer_arrangement("ABC", "X", without, rules).rule == "one live phase"
