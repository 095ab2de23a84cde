"""Meter files of the optical simulator: every shipped one loads; bad ones name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd_drivers.iec62056.protocol import parse_identification
from gatewayd_drivers.iec62056.readout import (
    build_data_message,
    extract_data_message,
    parse_data_block,
)
from gatewayd_sim.optical.profile import METER_DIR, MeterFileError, load_meter


@pytest.mark.parametrize("path", sorted(METER_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_meters_load_and_speak_valid_messages(path: Path) -> None:
    p = load_meter(path)
    assert p.description
    ident = parse_identification(p.identification.encode() + b"\r\n")
    assert ident.baud_char == p.baud_char

    block, _ = extract_data_message(build_data_message(p.data_block())) or (b"", 0)
    assert len(parse_data_block(block)) >= len(p.registers)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('identification = "ELS5X"\nregisters = ["1.8.0(1)"]', "identification"),
        ('identification = "/ELS5X"\nregisters = ["1.8.0 1"]', "registers"),
        ('identification = "/ELS5X"\nregisters = ["1.8.0(1)"]\nspeed = 1', "speed"),
        (
            'identification = "/ELS5X"\nregisters = ["1.8.0(1)"]\n[faults]\nslow_answer_s = -1',
            "faults.slow_answer_s",
        ),
        ("identification = ", "not valid TOML"),
    ],
)
def test_bad_meter_files(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(MeterFileError, match=where):
        load_meter(path)
