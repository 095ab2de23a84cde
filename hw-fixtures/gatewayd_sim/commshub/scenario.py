"""Scenario files for the Comms Hub simulator: TOML in, a validated typed model out.

A scenario describes one site: the hub's identity, the WAN's attach story, the
HAN devices and how each behaves, the simulator's speed and the faults to
inject. Times in ``[wan]``, ``[han]`` and ``[faults]`` (except ``noise``) are
site seconds, shortened by the speed; protocol timers are never scaled.

Every problem is reported as a ``ScenarioError`` naming the file, the key path
(``wan.timeline[2].state``) and the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    RSSI_UNKNOWN,
    Band,
    Cmd,
    CspRegion,
    HwVariant,
    RegState,
    StartReason,
    WanState,
    WanVariant,
)

MAX_BANNER = 2048
DEFAULT_SPEED = 50.0
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def shipped_scenario(name: str) -> Path:
    """The path of a scenario shipped with the simulator (``"quick"`` or ``"quick.toml"``)."""
    return SCENARIO_DIR / (name if name.endswith(".toml") else f"{name}.toml")


class ScenarioError(Exception):
    """A scenario that cannot be used; the message names file, key path and reason."""


def _parse_eui(value: object) -> Eui64:
    if isinstance(value, Eui64):
        return value
    if not isinstance(value, str):
        raise ValueError("an EUI-64 is a string in label form, e.g. 00-DB-12-34-56-78-90-A0")
    return Eui64.parse(value)


_REG_NAMES = {
    "not_registered": RegState.NOT_REGISTERED,
    "home": RegState.REGISTERED_HOME,
    "registered_home": RegState.REGISTERED_HOME,
    "searching": RegState.SEARCHING,
    "denied": RegState.DENIED,
    "unknown": RegState.UNKNOWN,
    "roaming": RegState.REGISTERED_ROAMING,
    "registered_roaming": RegState.REGISTERED_ROAMING,
}


def _parse_reg(value: object) -> object:
    if isinstance(value, str):
        reg = _REG_NAMES.get(value.lower())
        if reg is None:
            names = ", ".join(_REG_NAMES)
            raise ValueError(f"{value!r} is not a +CREG state: use one of {names} or 0..255")
        return int(reg)
    return value


def _parse_rssi(value: object) -> object:
    if isinstance(value, str) and value.lower() == "unknown":
        return RSSI_UNKNOWN
    if isinstance(value, bool) or not isinstance(value, int):
        return value  # pydantic reports the wrong type
    if value != RSSI_UNKNOWN and not -128 <= value <= 0:
        raise ValueError("an RSSI is -128..0 dBm, or 'unknown'")
    return value


def _parse_cmd(value: object) -> object:
    if isinstance(value, str):
        try:
            return Cmd[value.upper()]
        except KeyError:
            names = ", ".join(c.name for c in Cmd)
            raise ValueError(f"{value!r} is not a command: use one of {names}") from None
    return value


def _ascii(value: str, what: str) -> str:
    if not value.isascii():
        raise ValueError(f"the {what} must be ASCII text")
    return value


EuiField = Annotated[Eui64, PlainValidator(_parse_eui)]
RegField = Annotated[int, BeforeValidator(_parse_reg), Field(ge=0, le=255)]
RssiField = Annotated[int, BeforeValidator(_parse_rssi)]
CmdField = Annotated[Cmd, BeforeValidator(_parse_cmd)]
AsciiText = Annotated[str, Field(pattern=r"^[\x00-\x7f]*$")]

WanStateName = Literal["off", "searching", "registered", "connected", "fault"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Section):
    eui64: EuiField = Eui64.parse("00-DB-12-34-56-78-90-A0")
    hw_variant: Literal["single_band", "dual_band"] = "single_band"
    wan_variant: Literal["cellular", "cellular_mesh", "long_range_radio", "cellular_4g"] = (
        "cellular"
    )
    region: Literal["north", "central", "south"] = "central"
    firmware: Annotated[AsciiText, Field(max_length=255)] = "CHSIM-2.4.1"
    banner: Annotated[AsciiText, Field(max_length=MAX_BANNER)] | None = None
    han_channel: int = Field(default=15, ge=11, le=26)
    han_subghz_channel: int | None = Field(default=None, ge=0, le=254)
    han_pan_id: int = Field(default=0x1A2B, ge=0, le=0xFFFF)

    @property
    def hw(self) -> HwVariant:
        return HwVariant[self.hw_variant.upper()]

    @property
    def wan(self) -> WanVariant:
        return WanVariant[self.wan_variant.upper()]

    @property
    def csp_region(self) -> CspRegion:
        return CspRegion[self.region.upper()]

    @property
    def subghz_channel(self) -> int | None:
        """The 868 MHz channel: only a dual band hub has one (1 unless configured)."""
        if self.hw is not HwVariant.DUAL_BAND:
            return None
        return 1 if self.han_subghz_channel is None else self.han_subghz_channel

    def banner_bytes(self) -> bytes:
        """The boot banner as the serial console prints it (CR LF line ends)."""
        text = self.banner
        if text is None:
            text = (
                f"Comms Hub simulator\nFirmware {self.firmware}\nEUI-64 {self.eui64}\n"
                f"HW {self.hw_variant}, WAN {self.wan_variant}, region {self.region}\n"
                "Booting...\n"
            )
        lines = text.replace("\r\n", "\n").split("\n")
        return "\r\n".join(lines).encode("ascii")[:MAX_BANNER]


class WanStep(_Section):
    """One step of a WAN timeline; ``state`` omitted keeps the state (an RSSI-only step)."""

    at: float = Field(ge=0)
    state: WanStateName | None = None
    reg: RegField | None = None
    rssi: RssiField | None = None

    @property
    def wan_state(self) -> WanState | None:
        return None if self.state is None else WanState[self.state.upper()]


def _default_timeline() -> list[WanStep]:
    return [
        WanStep(at=0, state="searching"),
        WanStep(at=15, state="registered", rssi=-75),
        WanStep(at=40, state="connected", rssi=-73),
    ]


class WanSection(_Section):
    timeline: list[WanStep] = Field(default_factory=_default_timeline, min_length=1)
    reconnect_timeline: list[WanStep] | None = None
    reconnect_timelines: list[list[WanStep]] = Field(default_factory=list)

    def timeline_for_reconnect(self, number: int) -> list[WanStep]:
        """The steps after the ``number``-th WAN_RECONNECT (1 for the first)."""
        if 1 <= number <= len(self.reconnect_timelines):
            return self.reconnect_timelines[number - 1]
        if self.reconnect_timeline is not None:
            return self.reconnect_timeline
        return self.timeline


class HanDevice(_Section):
    eui64: EuiField
    label: str | None = None
    behaviour: Literal["join", "never", "key_failure"] = "join"
    join_after_s: float = Field(default=20.0, ge=0)
    join_on_window: int = Field(default=1, ge=1)
    fail_after_s: float = Field(default=10.0, ge=0)
    lost_after_s: float | None = Field(default=None, gt=0)
    band: Literal["2.4ghz", "868mhz"] = "2.4ghz"
    rssi: int = Field(default=-65, ge=-128, le=0)
    lqi: int = Field(default=200, ge=0, le=255)
    comms_interval_s: float = Field(default=30.0, gt=0)

    @property
    def han_band(self) -> Band:
        return Band.MHZ_868 if self.band == "868mhz" else Band.GHZ_2_4

    @property
    def name(self) -> str:
        return self.label or str(self.eui64)


class HanSection(_Section):
    up: bool = True
    log_changed_events: bool = True
    devices: list[HanDevice] = Field(default_factory=list)

    def device(self, eui64: Eui64) -> HanDevice | None:
        for device in self.devices:
            if device.eui64 == eui64:
                return device
        return None


class SimSection(_Section):
    speed: float = Field(default=DEFAULT_SPEED, gt=0)
    seed: int = 0


class Noise(_Section):
    every_s: float = Field(gt=0)
    bytes: int = Field(ge=1, le=4096)


class CmdCount(_Section):
    cmd: CmdField
    count: int = Field(ge=1)


class CmdDelay(_Section):
    cmd: CmdField
    delay_ms: int = Field(ge=0, le=60_000)


class CablePull(_Section):
    at: float = Field(ge=0)
    for_s: float = Field(alias="for", gt=0)


class SilentAt(_Section):
    """A firmware hang: the hub reads nothing and sends nothing more, its port still open.

    It starts at site time ``at``, or right after the hub answered the ``count``-th
    ``after`` request (a point in the host's dialogue, whenever the host gets there).
    """

    at: float | None = Field(default=None, ge=0)
    after: CmdField | None = None
    count: int = Field(default=1, ge=1)
    for_s: float | None = Field(default=None, alias="for", gt=0)  # None: to the end of the run

    @model_validator(mode="after")
    def _one_start(self) -> SilentAt:
        if (self.at is None) == (self.after is None):
            raise ValueError("give exactly one of 'at' (site seconds) or 'after' (a command)")
        return self


class RestartAt(_Section):
    at: float = Field(ge=0)
    reason: Literal["power_on", "watchdog", "remote"] = "power_on"

    @property
    def start_reason(self) -> StartReason:
        return {
            "power_on": StartReason.POWER_ON,
            "watchdog": StartReason.WATCHDOG,
            "remote": StartReason.REMOTE_RESTART,
        }[self.reason]


class FaultsSection(_Section):
    noise: Noise | None = None
    corrupt: float = Field(default=0.0, ge=0, le=1)
    drop_responses: list[CmdCount] = Field(default_factory=list)
    duplicate_events: bool = False
    ignore_acks: bool = False
    busy: list[CmdCount] = Field(default_factory=list)
    slow: list[CmdDelay] = Field(default_factory=list)
    cable_pull: list[CablePull] = Field(default_factory=list)
    restart: list[RestartAt] = Field(default_factory=list)
    silent: list[SilentAt] = Field(default_factory=list)


class Scenario(_Section):
    hub: HubSection = Field(default_factory=HubSection)
    wan: WanSection = Field(default_factory=WanSection)
    han: HanSection = Field(default_factory=HanSection)
    sim: SimSection = Field(default_factory=SimSection)
    faults: FaultsSection = Field(default_factory=FaultsSection)


# --- loading -----------------------------------------------------------------


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ``ScenarioError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the scenario: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario TOML text; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err)}" for err in exc.errors(include_url=False)]
        raise ScenarioError("\n".join(lines)) from None
    problems = _cross_check(scenario, data)
    if problems:
        raise ScenarioError("\n".join(f"{source}: {p}" for p in problems))
    return scenario


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _describe(err: ErrorDetails) -> str:
    path = _key_path(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str | int | float | bool):
        msg += f" (got {value!r})"
    return f"{path}: {msg}"


def _cross_check(scenario: Scenario, data: dict[str, Any]) -> list[str]:
    """Rules between keys, each reported with the key path it is about."""
    problems: list[str] = []
    hub = scenario.hub
    single = hub.hw is HwVariant.SINGLE_BAND
    if single and hub.han_subghz_channel is not None:
        problems.append(
            "hub.han_subghz_channel: only a dual_band hub has a sub-GHz channel "
            '(set hub.hw_variant = "dual_band" or drop the key)'
        )
    wan = scenario.wan
    timelines: list[tuple[str, list[WanStep]]] = [("wan.timeline", wan.timeline)]
    if wan.reconnect_timeline is not None:
        timelines.append(("wan.reconnect_timeline", wan.reconnect_timeline))
    for i, steps in enumerate(wan.reconnect_timelines):
        timelines.append((f"wan.reconnect_timelines[{i}]", steps))
    for name, steps in timelines:
        for i in range(1, len(steps)):
            if steps[i].at < steps[i - 1].at:
                problems.append(
                    f"{name}[{i}].at: steps must be in time order "
                    f"({steps[i].at:g} s comes after a step at {steps[i - 1].at:g} s)"
                )
    seen: dict[Eui64, int] = {}
    raw_devices = data.get("han", {}).get("devices", [])
    for i, device in enumerate(scenario.han.devices):
        where = f"han.devices[{i}]"
        if device.eui64 in seen:
            problems.append(
                f"{where}.eui64: {device.eui64} is already described by "
                f"han.devices[{seen[device.eui64]}]"
            )
        seen.setdefault(device.eui64, i)
        if device.eui64 == hub.eui64:
            problems.append(f"{where}.eui64: {device.eui64} is the hub's own EUI-64")
        if single and device.han_band is Band.MHZ_868:
            problems.append(
                f'{where}.band: 868mhz needs a dual band hub (hub.hw_variant = "dual_band")'
            )
        given = set(raw_devices[i]) if i < len(raw_devices) else set()
        only_for = {
            "join_after_s": "join",
            "join_on_window": "join",
            "lost_after_s": "join",
            "fail_after_s": "key_failure",
        }
        for key, behaviour in only_for.items():
            if key in given and device.behaviour != behaviour:
                problems.append(
                    f'{where}.{key}: only used with behaviour = "{behaviour}" '
                    f'(this device\'s behaviour is "{device.behaviour}")'
                )
    return problems
