"""Scenario files for the ZNP radio simulator: TOML in, a validated typed model out.

A radio scenario describes the air around one site: the energy on each 2.4 GHz channel,
the Zigbee networks whose beacons can be heard (the hub's, whose extended PAN ID is the
hub's EUI-64, and the neighbours'), how well each is heard from each place the kit can
stand (``lqi = { at_hub = 220, at_gas_meter = 40 }``; a place left out is a place where
that network is not heard), and the stick's own quirks: a stick that stays silent until
it is reset, slow confirms, and noise on the line and in the air.

Every problem is a ``ScenarioError`` naming the file, the key path and the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.znp.commands import Cmd
from gatewayd_drivers.znp.frames import CommandType
from gatewayd_sim.commshub.scenario import ScenarioError, _describe

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

__all__ = [
    "SCENARIO_DIR",
    "NetworkSpec",
    "RadioScenario",
    "ScenarioError",
    "load_radio_scenario",
    "parse_radio_scenario",
    "shipped_radio_scenario",
]


def shipped_radio_scenario(name: str) -> Path:
    return SCENARIO_DIR / (name if name.endswith(".toml") else f"{name}.toml")


def _parse_eui(value: object) -> Eui64:
    if isinstance(value, Eui64):
        return value
    if not isinstance(value, str):
        raise ValueError("an EUI-64 is a string in label form, e.g. 00-DB-12-34-56-78-90-A0")
    return Eui64.parse(value)


EuiField = Annotated[Eui64, PlainValidator(_parse_eui)]
Channel = Annotated[int, Field(ge=11, le=26)]
Level = Annotated[int, Field(ge=0, le=255)]
PositionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StickSpec(_Section):
    ieee: EuiField = Eui64.parse("00-12-4B-00-2A-3B-4C-5D")
    transport_rev: Level = 2
    product_id: Level = 1
    firmware: tuple[Level, Level, Level] = (2, 7, 1)
    code_revision: int = Field(default=20230507, ge=0, le=0xFFFFFFFF)
    needs_reset: bool = False  # silent until the host sends SYS.ResetReq
    confirm_delay_s: float = Field(default=0.0, ge=0, le=60)  # extra wait before confirms
    reset_delay_s: float = Field(default=0.05, ge=0, le=10)
    # Commands this firmware lacks (answered with an MT RPC error), by name: SYS_VERSION...
    unsupported: tuple[str, ...] = ()

    @field_validator("unsupported")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = {cmd.name for cmd in Cmd if cmd.ftype is CommandType.SREQ}
        for name in value:
            if name not in names:
                raise ValueError(
                    f"{name!r} is not a request: use one of {', '.join(sorted(names))}"
                )
        return value


class SiteSpec(_Section):
    positions: tuple[PositionName, ...] = ("at_hub",)
    position: PositionName = "at_hub"


class EnergySpec(_Section):
    default: Level = 10
    channels: dict[Channel, Level] = {}
    # Per position, levels that replace the site-wide ones there.
    by_position: dict[PositionName, dict[Channel, Level]] = {}


class NetworkSpec(_Section):
    name: str = Field(min_length=1, max_length=40)
    pan_id: int = Field(ge=0, le=0xFFFE)
    extended_pan_id: EuiField
    channel: Channel
    src: int = Field(default=0x0000, ge=0, le=0xFFFF)
    permit_joining: bool = False
    depth: int = Field(default=0, ge=0, le=15)
    stack_profile: Level = 2
    protocol_version: Level = 2
    update_id: Level = 0
    lqi: dict[PositionName, Level]


class NoiseSpec(_Section):
    lqi_jitter: int = Field(default=0, ge=0, le=50)  # each beacon's LQI moves by up to this
    energy_jitter: int = Field(default=0, ge=0, le=50)
    missed_beacon_rate: float = Field(default=0.0, ge=0, lt=1)  # a beacon lost in one scan
    line_garbage_every_s: float = Field(default=0.0, ge=0)  # junk bytes on the serial line
    false_length: bool = False  # the junk holds a SOF with a length that runs over frames


class RadioScenario(_Section):
    description: str = ""
    seed: int = 1
    stick: StickSpec = StickSpec()
    site: SiteSpec = SiteSpec()
    energy: EnergySpec = EnergySpec()
    networks: tuple[NetworkSpec, ...] = ()
    noise: NoiseSpec = NoiseSpec()


def _cross_check(s: RadioScenario) -> list[str]:
    problems: list[str] = []
    known = set(s.site.positions)
    if s.site.position not in known:
        problems.append(f"site.position: {s.site.position!r} is not one of site.positions")
    for pos in s.energy.by_position:
        if pos not in known:
            problems.append(f"energy.by_position.{pos}: not one of site.positions")
    names: dict[str, int] = {}
    for i, n in enumerate(s.networks):
        if n.name in names:
            problems.append(f"networks[{i}].name: {n.name!r} is already networks[{names[n.name]}]")
        names.setdefault(n.name, i)
        for pos in n.lqi:
            if pos not in known:
                problems.append(f"networks[{i}].lqi.{pos}: not one of site.positions")
    return problems


def parse_radio_scenario(text: str, source: str = "<radio scenario>") -> RadioScenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    try:
        scenario = RadioScenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err)}" for err in exc.errors(include_url=False)]
        raise ScenarioError("\n".join(lines)) from None
    problems = _cross_check(scenario)
    if problems:
        raise ScenarioError("\n".join(f"{source}: {p}" for p in problems))
    return scenario


def load_radio_scenario(path: Path) -> RadioScenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc}") from None
    return parse_radio_scenario(text, source=str(path))
