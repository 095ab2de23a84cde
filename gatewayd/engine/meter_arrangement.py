"""From the existing meter's readout to the site's supply arrangement, by rules in a data file.

Flow: bytes -> frames -> **meter state** (the optical readout) -> this mapping -> the meter
type check. Pure: the rules are data (``meter_arrangements.toml`` shipped beside this module,
or a kit's own file), and ``infer_arrangement`` only looks at the readout it is given.

What it looks at: the phases with per-phase registers (a phase whose voltage reads dead does
not count), the measuring elements (measurement channels of the energy registers), the
current and voltage transformer ratio registers, and the manufacturer and identification.
The first rule whose every condition holds gives the arrangement; none gives ``None``
(unknown), and the job's own value is used. ``docs/optical-probe.md`` describes the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatewayd.config.errors import RuleViolations, read_toml, validate_document
from gatewayd.config.job import Supply
from gatewayd.engine.published import Facts, enum_value
from gatewayd_drivers.iec62056.readout import DataSet

__all__ = [
    "SHIPPED_RULES",
    "ArrangementRules",
    "Inference",
    "MeterReadingFacts",
    "infer_arrangement",
    "load_rules",
    "shipped_rules",
]

SHIPPED_RULES = Path(__file__).resolve().parent / "meter_arrangements.toml"

_STRICT = ConfigDict(extra="forbid", frozen=True)
_CD = re.compile(r"^\d{1,3}\.\d{1,3}$")
_CDE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$")


def _check_codes(codes: Sequence[str], pattern: re.Pattern[str], form: str) -> None:
    bad = [c for c in codes if not pattern.match(c)]
    if bad:
        raise ValueError(f"{', '.join(map(repr, bad))} not OBIS {form} codes (e.g. 32.7)")


class RegisterMap(BaseModel):
    model_config = _STRICT

    L1: tuple[str, ...]
    L2: tuple[str, ...]
    L3: tuple[str, ...]
    L1_voltage: str | None = None
    L2_voltage: str | None = None
    L3_voltage: str | None = None
    min_phase_voltage: float = Field(default=50.0, ge=0)
    element_energy: tuple[str, ...] = ("1.8", "2.8")
    ct_numerator: tuple[str, ...] = ("0.4.2",)
    ct_denominator: tuple[str, ...] = ("0.4.5",)
    vt_numerator: tuple[str, ...] = ("0.4.3",)
    vt_denominator: tuple[str, ...] = ("0.4.6",)

    @field_validator("L1", "L2", "L3", "element_energy")
    @classmethod
    def _cd(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_codes(value, _CD, "C.D")
        return value

    @field_validator("L1_voltage", "L2_voltage", "L3_voltage")
    @classmethod
    def _voltage(cls, value: str | None) -> str | None:
        if value is not None:
            _check_codes([value], _CD, "C.D")
        return value

    @field_validator("ct_numerator", "ct_denominator", "vt_numerator", "vt_denominator")
    @classmethod
    def _cde(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _check_codes(value, _CDE, "C.D.E")
        return value


class Rule(BaseModel):
    """One rule: an arrangement and the conditions (all must hold) that give it."""

    model_config = _STRICT

    name: str = Field(min_length=1, max_length=80)
    arrangement: Supply
    manufacturer: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    identification: str | None = Field(
        default=None, description="A regular expression searched in the identification"
    )
    phases: int | None = Field(default=None, ge=1, le=3)
    min_elements: int | None = Field(default=None, ge=1, le=4)
    ct_ratio_above: float | None = Field(default=None, ge=0)
    vt_ratio_above: float | None = Field(default=None, ge=0)
    registers_present: tuple[str, ...] = ()

    @field_validator("identification")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> Self:
        conditions = (
            self.manufacturer,
            self.identification,
            self.phases,
            self.min_elements,
            self.ct_ratio_above,
            self.vt_ratio_above,
        )
        if all(c is None for c in conditions) and not self.registers_present:
            raise RuleViolations([((), "a rule needs at least one condition")])
        return self


class ArrangementRules(BaseModel):
    """The mapping file, validated."""

    model_config = _STRICT

    registers: RegisterMap
    rules: tuple[Rule, ...] = Field(min_length=1)


def load_rules(path: str | os.PathLike[str]) -> ArrangementRules:
    """Read and validate a rules file. Raises ``ConfigError`` naming key and reason."""
    return validate_document(ArrangementRules, read_toml(path), str(path))


_shipped: ArrangementRules | None = None


def shipped_rules() -> ArrangementRules:
    global _shipped
    if _shipped is None:
        _shipped = load_rules(SHIPPED_RULES)
    return _shipped


@dataclass(frozen=True, slots=True)
class Inference:
    """What the readout shows, and the arrangement the rules give (``None``: unknown)."""

    supply: Supply | None
    rule: str | None
    phases: tuple[str, ...]
    elements: int
    ct_ratio: float | None
    vt_ratio: float | None
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MeterReadingFacts:
    """The optical probe's reading of the existing meter, as the meter type check uses it.

    ``read`` is False when the meter could not be read (``error`` says why). ``supply`` is
    the detected arrangement, ``None`` when unread or when the rules cannot tell.
    """

    read: bool
    supply: Supply | None = None
    manufacturer: str | None = None
    identification: str | None = None
    rule: str | None = None
    evidence: tuple[str, ...] = ()
    baudrate: int | None = None
    error: str | None = None

    def published(self) -> Facts:
        """Its fields as published (the result's ``meter_type.meter``); no registers, no serial."""
        return {
            "read": self.read,
            "supply": enum_value(self.supply),
            "manufacturer": self.manufacturer,
            "identification": self.identification,
            "rule": self.rule,
            "evidence": list(self.evidence),
            "baudrate": self.baudrate,
            "error": self.error,
        }


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Index:
    def __init__(self, data_sets: Sequence[DataSet]) -> None:
        self.by_cd: dict[str, list[DataSet]] = {}
        self.by_cde: dict[str, list[DataSet]] = {}
        self.channels_by_cd: dict[str, set[int]] = {}
        self.addresses = {ds.address for ds in data_sets}
        for ds in data_sets:
            code = ds.obis
            if code is None:
                continue
            self.by_cd.setdefault(code.cd, []).append(ds)
            if code.cde is not None:
                self.by_cde.setdefault(code.cde, []).append(ds)
            self.channels_by_cd.setdefault(code.cd, set()).add(code.b if code.b else 1)

    def first(self, cdes: Sequence[str]) -> DataSet | None:
        for cde in cdes:
            if cde in self.by_cde:
                return self.by_cde[cde][0]
        return None

    def has(self, code: str) -> bool:
        if code in self.addresses:
            return True
        return code in (self.by_cde if code.count(".") == 2 else self.by_cd)


def _ratio(
    ix: _Index, num: Sequence[str], den: Sequence[str], label: str, evidence: list[str]
) -> float | None:
    n = ix.first(num)
    if n is None:
        return None
    d = ix.first(den)
    nv = _number(n.value)
    dv = _number(d.value) if d is not None else 1.0
    if nv is None or dv is None or dv == 0:
        evidence.append(f"{label} ratio registers unreadable ({n.address}={n.value!r})")
        return None
    ratio = nv / dv
    shown = f"{n.value}/{d.value}" if d is not None else n.value
    evidence.append(f"{label} ratio {shown} = {ratio:g} ({n.address})")
    return ratio


def infer_arrangement(
    manufacturer: str,
    identification: str,
    data_sets: Sequence[DataSet],
    rules: ArrangementRules | None = None,
) -> Inference:
    """Apply ``rules`` (default: the shipped file) to a readout."""
    r = rules or shipped_rules()
    m = r.registers
    ix = _Index(data_sets)
    evidence: list[str] = []

    phases: list[str] = []
    for phase, codes, voltage in (
        ("L1", m.L1, m.L1_voltage),
        ("L2", m.L2, m.L2_voltage),
        ("L3", m.L3, m.L3_voltage),
    ):
        present = [c for c in codes if c in ix.by_cd]
        if not present:
            continue
        volts = ix.by_cd.get(voltage or "", [])
        level = _number(volts[0].value) if volts else None
        if level is not None and level < m.min_phase_voltage:
            evidence.append(f"{phase} registers present but its voltage reads {level:g} V (dead)")
            continue
        phases.append(phase)
        evidence.append(f"{phase} live ({', '.join(present)})")
    if not phases:
        evidence.append("no per-phase registers")

    channels: set[int] = set()
    for cd in m.element_energy:
        channels |= ix.channels_by_cd.get(cd, set())
    elements = len(channels)
    if elements:
        evidence.append(
            f"energy registers on {elements} measuring element(s) "
            f"(channel {', '.join(str(c) for c in sorted(channels))})"
        )

    ct = _ratio(ix, m.ct_numerator, m.ct_denominator, "CT", evidence)
    vt = _ratio(ix, m.vt_numerator, m.vt_denominator, "VT", evidence)

    for rule in r.rules:
        if _holds(rule, manufacturer, identification, len(phases), elements, ct, vt, ix):
            return Inference(
                rule.arrangement, rule.name, tuple(phases), elements, ct, vt, tuple(evidence)
            )
    return Inference(None, None, tuple(phases), elements, ct, vt, tuple(evidence))


def _holds(
    rule: Rule,
    manufacturer: str,
    identification: str,
    phases: int,
    elements: int,
    ct: float | None,
    vt: float | None,
    ix: _Index,
) -> bool:
    if rule.manufacturer is not None and rule.manufacturer.upper() != manufacturer.upper():
        return False
    if rule.identification is not None and not re.search(rule.identification, identification):
        return False
    if rule.phases is not None and phases != rule.phases:
        return False
    if rule.min_elements is not None and elements < rule.min_elements:
        return False
    if rule.ct_ratio_above is not None and (ct is None or not ct > rule.ct_ratio_above):
        return False
    if rule.vt_ratio_above is not None and (vt is None or not vt > rule.vt_ratio_above):
        return False
    return all(ix.has(code) for code in rule.registers_present)
