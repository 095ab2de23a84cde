"""The job: which site, which fuels, which devices, and what the supplier wants on no WAN.

Flow: the job is an input beside the hub's bytes and events. It tells the probes which
devices to add to the hub's device log, and the verdict which devices decide the result
and which policy applies; its ``job_id`` names the job in every publication.

A job arrives as a TOML file (``load_job``), or as the same document in JSON inside an MQTT
``start_job`` request, whose model embeds ``Job``; ``parse_job`` validates one already parsed
(the daemon's job journal, ``check-config``). All go through the same model, and every error
names its key path.

Rules beyond single keys (each reported at the key it is about):

- ``mpan`` and ``supply`` are required when electricity is fitted and not allowed otherwise;
  ``mprn`` likewise for gas.
- Each fitted fuel needs its meter among the devices (one ESME for electricity, one GSME for
  gas), and a meter is only allowed for a fitted fuel: without its meter the HAN stage
  could not check the device the visit is for.
- At most one ESME and one GSME (a job is one MPAN and one MPRN), no EUI-64 twice, and at
  most 16 devices (the hub's device log holds 16).
- Device types are ESME, GSME, IHD, PPMID, HCALCS and CAD; the hub's HHT type is the
  installer's hand-held terminal, never a device a job commissions.
- An install code of all zeros is refused (the hub refuses it too).
- In ``[timing]``, a HAN deadline shorter than the join window is refused (no window could
  run its course).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gatewayd.config.errors import Loc, RuleViolations, read_toml, validate_document
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import MAX_JOIN_TIMEOUT_S, DeviceType

__all__ = [
    "COMMISSIONABLE_TYPES",
    "JOB_ID_PATTERN",
    "JOB_ID_RULE",
    "MAX_DEVICES",
    "MAX_JOB_ID_CHARS",
    "Device",
    "Fuel",
    "Job",
    "JobId",
    "Policy",
    "Supply",
    "TimingOverrides",
    "check_job_id",
    "load_job",
    "mpan_check_digit",
    "parse_job",
]

# A job id names the job's MQTT topics (one level: ``jobs/<job_id>/result``) and its entry in the
# daemon's job journal (a file ``<job_id>.json``), so one rule must make it safe as both. The
# characters leave out '/', '+', '#', NUL, every other control character, spaces and non-ASCII;
# the first one must be a letter or digit, which rules out '.', '..', hidden files ('.x') and
# names a command line reads as options ('-rf'). Every place a job id enters uses this rule.
MAX_JOB_ID_CHARS: Final = 64
JOB_ID_PATTERN: Final = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_JOB_ID_CHARS - 1}}}"
_JOB_ID = re.compile(JOB_ID_PATTERN)
JOB_ID_RULE: Final = (
    f"1 to {MAX_JOB_ID_CHARS} characters from A-Z, a-z, 0-9, '.', '_' and '-', starting with "
    "a letter or a digit"
)
MAX_DEVICES = 16
MAX_DEADLINE_S = 86_400.0
MAX_JOIN_ATTEMPTS = 20
_MPAN_WEIGHTS = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
COMMISSIONABLE_TYPES: tuple[DeviceType, ...] = (
    DeviceType.ESME,
    DeviceType.GSME,
    DeviceType.IHD,
    DeviceType.PPMID,
    DeviceType.HCALCS,
    DeviceType.CAD,
)
_REQUIRED_BY_DEFAULT = frozenset({DeviceType.ESME, DeviceType.GSME})
_METER_FOR_FUEL: dict[str, DeviceType] = {"electricity": DeviceType.ESME, "gas": DeviceType.GSME}


class Fuel(enum.StrEnum):
    ELECTRICITY = "electricity"
    GAS = "gas"


class Supply(enum.StrEnum):
    """How the electricity supply is arranged, which decides the meter variant it needs."""

    SINGLE_PHASE = "single_phase"
    POLYPHASE = "polyphase"
    TWIN_ELEMENT = "twin_element"
    CT = "ct"


class Policy(enum.StrEnum):
    """What the supplier wants when the WAN does not come up by the deadline."""

    INSTALL_AND_LEAVE = "install_and_leave"
    ABORT_ON_NO_WAN = "abort_on_no_wan"


def _not_digits(what: str, expected: str, length: int, shortest: int, longest: int) -> str:
    """Why a meter point number is refused, without repeating it (spaces do not count)."""
    if shortest <= length <= longest:
        return f"{what} is {expected}, got {length} characters that are not all digits"
    return f"{what} is {expected}, got {length} characters"


def mpan_check_digit(first_twelve: str) -> int:
    """The MPAN core's check digit: weighted sum of the first 12 digits, mod 11, mod 10."""
    if len(first_twelve) != 12 or not first_twelve.isascii() or not first_twelve.isdigit():
        raise ValueError(f"need exactly 12 digits, got {first_twelve!r}")
    total = sum(int(d) * w for d, w in zip(first_twelve, _MPAN_WEIGHTS, strict=True))
    return total % 11 % 10


# --- field types ---------------------------------------------------------------


def check_job_id(value: object) -> str:
    """``value`` if it is a safe job id (``JOB_ID_PATTERN``); ``ValueError`` saying why not."""
    if not isinstance(value, str):
        raise ValueError(
            f"a job id is a string such as 'JOB-2025-000123', got {type(value).__name__}"
        )
    # fullmatch, not match with '$': '$' also matches before a trailing newline.
    if _JOB_ID.fullmatch(value) is None:
        # A long value is shown only in part: the reason must stay one readable line.
        shown = (
            repr(value)
            if len(value) <= MAX_JOB_ID_CHARS
            else f"{value[:16]!r}... ({len(value)} characters)"
        )
        raise ValueError(
            f"{shown} is not a usable job id: it must be {JOB_ID_RULE} (it becomes an MQTT "
            "topic level and a file name)"
        )
    return value


JobId = Annotated[
    str,
    PlainValidator(check_job_id),
    WithJsonSchema({"type": "string", "pattern": f"^{JOB_ID_PATTERN}$"}),
]


def _parse_eui64(value: object) -> Eui64:
    if isinstance(value, Eui64):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"an EUI-64 is a string such as '00-DB-12-34-56-78-90-A0', got {type(value).__name__}"
        )
    return Eui64.parse(value)


Eui64Field = Annotated[
    Eui64,
    PlainValidator(_parse_eui64),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){7}$"}),
]


def _parse_install_code(value: object) -> bytes:
    if isinstance(value, bytes):
        code = value
    elif isinstance(value, str):
        # Never echo the code itself: it is the key that lets a device onto the HAN.
        if len(value) != 32 or not re.fullmatch(r"[0-9A-Fa-f]{32}", value):
            raise ValueError(
                f"an install code is 32 hex digits with no separators, got {len(value)} "
                "characters" + ("" if len(value) != 32 else " that are not all hex digits")
            )
        code = bytes.fromhex(value)
    else:
        raise ValueError(
            f"an install code is a string of 32 hex digits, got {type(value).__name__}"
        )
    if len(code) != 16:
        raise ValueError(f"an install code is 16 bytes, got {len(code)}")
    if not any(code):
        raise ValueError("an install code of all zeros is not valid (the hub refuses it)")
    return code


InstallCode = Annotated[
    bytes,
    PlainValidator(_parse_install_code),
    PlainSerializer(lambda b: b.hex().upper(), return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9A-Fa-f]{32}$"}),
]


def _parse_device_type(value: object) -> DeviceType:
    if isinstance(value, DeviceType):
        name = value.name
    elif isinstance(value, str):
        name = value.strip().upper()
    else:
        raise ValueError(
            f"give the device type by name ({_type_names()}), got {type(value).__name__}"
        )
    if name == DeviceType.HHT.name:
        raise ValueError(
            "HHT is the installer's hand-held terminal, not a device a job commissions"
        )
    for t in COMMISSIONABLE_TYPES:
        if t.name == name:
            return t
    raise ValueError(f"unknown device type {value!r}; expected one of {_type_names()}")


def _an(name: str) -> str:
    return f"an {name}" if name[:1] in "AEIOU" else f"a {name}"


def _type_names() -> str:
    return ", ".join(t.name for t in COMMISSIONABLE_TYPES)


DeviceTypeField = Annotated[
    DeviceType,
    PlainValidator(_parse_device_type),
    PlainSerializer(lambda t: t.name, return_type=str),
    WithJsonSchema({"type": "string", "enum": [t.name for t in COMMISSIONABLE_TYPES]}),
]


# --- models --------------------------------------------------------------------

# defer_build: a job's models are built at the first job, once; the kit config, which
# imports this module for its [timing] table, does not wait for them.
_STRICT = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Device(BaseModel):
    """One device to add to the hub's device log and see join the HAN."""

    model_config = _STRICT

    eui64: Eui64Field
    type: DeviceTypeField
    install_code: InstallCode = Field(repr=False)
    required: bool = Field(
        description="Whether a failure to join aborts the job (default: ESME and GSME only)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_required(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "required" not in data:
            kind = data.get("type")
            name = kind.name if isinstance(kind, DeviceType) else str(kind).strip().upper()
            data = {**data, "required": name in {t.name for t in _REQUIRED_BY_DEFAULT}}
        return data


class TimingOverrides(BaseModel):
    """Per-job replacements for the kit config's default deadlines; absent keys keep the kit's."""

    model_config = _STRICT

    wan_deadline_s: float | None = Field(default=None, gt=0, le=MAX_DEADLINE_S)
    han_deadline_s: float | None = Field(default=None, gt=0, le=MAX_DEADLINE_S)
    join_window_s: int | None = Field(default=None, ge=1, le=MAX_JOIN_TIMEOUT_S)
    join_attempts: int | None = Field(default=None, ge=1, le=MAX_JOIN_ATTEMPTS)

    @model_validator(mode="after")
    def _window_fits(self) -> Self:
        if (
            self.han_deadline_s is not None
            and self.join_window_s is not None
            and self.han_deadline_s < self.join_window_s
        ):
            raise RuleViolations(
                [
                    (
                        ("han_deadline_s",),
                        f"{self.han_deadline_s:g} s is shorter than the join window "
                        f"({self.join_window_s} s): no join window could run its course",
                    )
                ]
            )
        return self


class Job(BaseModel):
    """A commissioning job, validated. Build it with ``load_job`` or ``parse_job``."""

    model_config = _STRICT

    job_id: JobId
    fuels: tuple[Fuel, ...] = (Fuel.ELECTRICITY, Fuel.GAS)
    mpan: str | None = None
    mprn: str | None = None
    supply: Supply | None = None
    policy: Policy = Policy.INSTALL_AND_LEAVE
    devices: tuple[Device, ...]
    timing: TimingOverrides = TimingOverrides()

    @field_validator("fuels", mode="after")
    @classmethod
    def _fuels(cls, value: tuple[Fuel, ...]) -> tuple[Fuel, ...]:
        if not value:
            raise ValueError("at least one fuel is needed: electricity, gas or both")
        if len(set(value)) != len(value):
            raise ValueError("a fuel is listed twice")
        return value

    @field_validator("mpan", mode="before")
    @classmethod
    def _mpan(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(
                "write the MPAN as a quoted string of 13 digits (a number would lose leading zeros)"
            )
        # Never echo the MPAN itself, even a wrong one: it identifies a home.
        digits = value.replace(" ", "")
        if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
            raise ValueError(_not_digits("an MPAN core", "13 digits", len(digits), 13, 13))
        expected = mpan_check_digit(digits[:12])
        if int(digits[12]) != expected:
            raise ValueError(f"fails the MPAN check digit: the last digit should be {expected}")
        return digits

    @field_validator("mprn", mode="before")
    @classmethod
    def _mprn(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(
                "write the MPRN as a quoted string of 6 to 10 digits (a number would lose "
                "leading zeros)"
            )
        digits = value.replace(" ", "")
        if not (6 <= len(digits) <= 10) or not digits.isascii() or not digits.isdigit():
            raise ValueError(_not_digits("an MPRN", "6 to 10 digits", len(digits), 6, 10))
        return digits

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        elec = Fuel.ELECTRICITY in self.fuels
        gas = Fuel.GAS in self.fuels
        if elec and self.mpan is None:
            problems.append((("mpan",), "required when electricity is among the fuels"))
        if not elec and self.mpan is not None:
            problems.append((("mpan",), "given, but electricity is not among the fuels"))
        if elec and self.supply is None:
            problems.append(
                (
                    ("supply",),
                    "required when electricity is among the fuels "
                    "(single_phase, polyphase, twin_element or ct)",
                )
            )
        if not elec and self.supply is not None:
            problems.append((("supply",), "given, but electricity is not among the fuels"))
        if gas and self.mprn is None:
            problems.append((("mprn",), "required when gas is among the fuels"))
        if not gas and self.mprn is not None:
            problems.append((("mprn",), "given, but gas is not among the fuels"))

        if len(self.devices) > MAX_DEVICES:
            problems.append(
                (("devices",), f"{len(self.devices)} devices; the hub's device log holds 16")
            )
        seen: dict[Eui64, int] = {}
        meters: dict[DeviceType, int] = {}
        for i, dev in enumerate(self.devices):
            if dev.eui64 in seen:
                problems.append(
                    (("devices", i, "eui64"), f"{dev.eui64} is already devices[{seen[dev.eui64]}]")
                )
            else:
                seen[dev.eui64] = i
            for fuel, meter in _METER_FOR_FUEL.items():
                if dev.type != meter:
                    continue
                if fuel not in self.fuels:
                    problems.append(
                        (("devices", i, "type"), f"{_an(meter.name)} needs {fuel} among the fuels")
                    )
                elif meter in meters:
                    problems.append(
                        (
                            ("devices", i, "type"),
                            f"a second {meter.name} (devices[{meters[meter]}] is one); "
                            f"a job has one {fuel} meter",
                        )
                    )
                else:
                    meters[meter] = i
        for fuel, meter in _METER_FOR_FUEL.items():
            if fuel in self.fuels and meter not in meters:
                problems.append(
                    (("devices",), f"{fuel} is fitted, so {_an(meter.name)} device is needed")
                )
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def required_devices(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.required)

    def device(self, eui64: Eui64) -> Device | None:
        for d in self.devices:
            if d.eui64 == eui64:
                return d
        return None


def parse_job(data: Mapping[str, Any], source: str = "<job>") -> Job:
    """Validate a job given as a mapping (parsed TOML or JSON).

    Raises ``ConfigError`` listing every problem as ``SOURCE: key.path: reason``.
    """
    return validate_document(Job, data, source)


def load_job(path: str | os.PathLike[str]) -> Job:
    """Read and validate a job file (TOML). Raises ``ConfigError``."""
    return parse_job(read_toml(path), source=str(path))
