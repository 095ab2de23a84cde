"""Meter files for the optical simulator: TOML in, a validated ``MeterProfile`` out.

A meter file gives the identification line the meter sends (without CR LF), the data lines
of its readout (``address(value*unit)``, as the meter prints them), whether it is battery
powered (it answers only after a wake-up), its reaction time, and faults to inject:

- ``wrong_bcc``: the data message's block check character is wrong;
- ``no_answer``: the meter never answers the sign-on;
- ``slow_answer_s``: extra seconds before each answer;
- ``garbled_identification``: the identification arrives corrupted;
- ``ignores_baud_switch``: the meter announces a faster rate but keeps sending at 300 baud;
- ``echo``: the probe's light reflects off the meter's window, so the kit hears what it sends.

Problems are reported as ``MeterFileError`` naming the file, the key and the reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

METER_DIR = Path(__file__).resolve().parent.parent / "meters"

_STRICT = ConfigDict(extra="forbid", frozen=True)


class MeterFileError(Exception):
    """A meter file that cannot be used."""


def shipped_meter(name: str) -> Path:
    """A meter file shipped with the simulator (``"polyphase"`` or ``"polyphase.toml"``)."""
    return METER_DIR / (name if name.endswith(".toml") else f"{name}.toml")


class Faults(BaseModel):
    model_config = _STRICT

    wrong_bcc: bool = False
    no_answer: bool = False
    slow_answer_s: float = Field(default=0.0, ge=0, le=30)
    garbled_identification: bool = False
    ignores_baud_switch: bool = False
    echo: bool = False


class MeterProfile(BaseModel):
    model_config = _STRICT

    description: str = ""
    identification: str = Field(min_length=5, max_length=40)
    registers: tuple[str, ...] = Field(min_length=1)
    battery: bool = False
    # NULs a battery meter must hear before it listens (a 2.2 s wake-up at 300 baud is 66).
    wake_up_nuls: int = Field(default=20, ge=1, le=1000)
    # IEC 62056-21: between 200 ms and 1.5 s.
    reaction_s: float = Field(default=0.2, ge=0.0, le=1.5)
    faults: Faults = Faults()

    @field_validator("identification")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not value.startswith("/") or not value.isascii() or not value.isprintable():
            raise ValueError("the identification line starts with '/' and is printable ASCII")
        return value

    @field_validator("registers")
    @classmethod
    def _lines(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, line in enumerate(value):
            if not line.isascii() or not line.isprintable() or "(" not in line or "!" in line:
                raise ValueError(f"registers[{i}] {line!r} is not a data line address(value)")
        return value

    @property
    def baud_char(self) -> str:
        return self.identification[4]

    def data_block(self) -> bytes:
        return ("\r\n".join(self.registers) + "\r\n!\r\n").encode("ascii")


def load_meter(path: Path) -> MeterProfile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MeterFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MeterFileError(f"{path}: not valid TOML: {exc}") from None
    try:
        return MeterProfile.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise MeterFileError("\n".join(problems)) from None
