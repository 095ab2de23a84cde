"""The meter type check: supply against the van's variants."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayd.config.job import Job, Supply, parse_job
from gatewayd.engine.meter_type import (
    ArrangementSource,
    ElectricityVariant,
    check_meter_type,
    variant_for,
)

CODE = "3F1A9C0E5B7D2468ACE013579BDF0246"
ALL = tuple(ElectricityVariant)
SP, PP, TE = (
    ElectricityVariant.SINGLE_PHASE,
    ElectricityVariant.POLYPHASE,
    ElectricityVariant.TWIN_ELEMENT,
)


def job(supply: str | None, fuels: tuple[str, ...] = ("electricity",)) -> Job:
    doc: dict[str, Any] = {"job_id": "J", "fuels": list(fuels), "devices": []}
    if "electricity" in fuels:
        doc["mpan"] = "1600123456785"
        doc["supply"] = supply
        doc["devices"].append(
            {"eui64": "00-DB-12-34-56-78-90-A1", "type": "ESME", "install_code": CODE}
        )
    if "gas" in fuels:
        doc["mprn"] = "123456"
        doc["devices"].append(
            {"eui64": "00-DB-12-34-56-78-90-A2", "type": "GSME", "install_code": CODE}
        )
    return parse_job(doc)


@pytest.mark.parametrize(
    ("supply", "van", "available", "needed"),
    [
        ("single_phase", ALL, True, SP),
        ("polyphase", ALL, True, PP),
        ("twin_element", ALL, True, TE),
        ("single_phase", (PP, TE), False, SP),
        ("polyphase", (SP,), False, PP),
        ("twin_element", (SP, PP), False, TE),
        ("polyphase", (), False, PP),
        ("ct", ALL, False, None),
        ("ct", (), False, None),
    ],
    ids=lambda v: "-".join(x.value for x in v) if isinstance(v, tuple) else str(v),
)
def test_supply_against_van(
    supply: str,
    van: tuple[ElectricityVariant, ...],
    available: bool,
    needed: ElectricityVariant | None,
) -> None:
    result = check_meter_type(job(supply), van)
    assert result.applicable
    assert result.available is available
    assert result.needed_variant == needed
    assert result.supply is Supply(supply)
    assert result.is_ct is (supply == "ct")
    assert result.source is ArrangementSource.JOB
    assert result.van_variants == van
    assert not result.mismatch


def test_ct_never_passes_whatever_the_van_holds() -> None:
    assert variant_for(Supply.CT) is None
    assert not check_meter_type(job("ct"), ALL).available


def test_gas_only_job_is_not_checked() -> None:
    result = check_meter_type(job(None, fuels=("gas",)), ())
    assert not result.applicable
    assert result.available
    assert result.supply is None
    assert result.source is None


def test_dual_fuel_job_is_checked_on_its_electricity() -> None:
    result = check_meter_type(job("polyphase", fuels=("electricity", "gas")), (SP,))
    assert result.applicable
    assert not result.available


def test_the_meter_on_the_wall_beats_the_job_and_the_mismatch_is_kept() -> None:
    result = check_meter_type(job("single_phase"), (SP,), meter_supply=Supply.POLYPHASE)
    assert result.source is ArrangementSource.METER
    assert result.supply is Supply.POLYPHASE
    assert result.job_supply is Supply.SINGLE_PHASE
    assert result.mismatch
    assert not result.available


def test_meter_agreeing_with_the_job_is_no_mismatch() -> None:
    result = check_meter_type(job("polyphase"), (PP,), meter_supply=Supply.POLYPHASE)
    assert result.source is ArrangementSource.METER
    assert not result.mismatch
    assert result.available


def test_van_duplicates_collapse_in_order() -> None:
    result = check_meter_type(job("single_phase"), [PP, SP, PP])
    assert result.van_variants == (PP, SP)
