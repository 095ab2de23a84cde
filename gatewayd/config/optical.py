"""The kit config's ``[optical]`` table: the optical probe that reads the existing meter.

Flow: read once at start-up with the kit config. When present, the meter type check of every
electricity job reads the meter through this probe first (``gatewayd.engine.optical_check``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatewayd.config.errors import ConfigError
from gatewayd_drivers.iec62056.protocol import MODE_C_BAUD

__all__ = ["OpticalProbeConfig"]


class OpticalProbeConfig(BaseModel):
    """The IEC 62056-21 optical probe on a serial port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: str = Field(min_length=1, description="The probe's serial device")
    wake_up: bool = Field(
        default=False, description="Send the battery meters' wake-up (NULs) before signing on"
    )
    baud_switch: bool = Field(
        default=True, description="Switch to the meter's faster baud rate for the readout"
    )
    max_baudrate: int = Field(default=19200, description="Fastest rate to switch to")
    device_address: str = Field(
        default="", pattern=r"^[0-9A-Za-z ]{0,32}$", description="Sign-on address; empty: any"
    )
    rules: Path | None = Field(
        default=None,
        description="Own meter-to-arrangement rules file (default: the shipped one)",
    )

    @field_validator("max_baudrate")
    @classmethod
    def _mode_c_rate(cls, value: int) -> int:
        if value not in MODE_C_BAUD.values():
            rates = ", ".join(str(r) for r in sorted(MODE_C_BAUD.values()))
            raise ValueError(f"{value} is not an IEC 62056-21 mode C rate ({rates})")
        return value

    @field_validator("rules")
    @classmethod
    def _rules_load(cls, value: Path | None) -> Path | None:
        if value is not None:
            # Here, not at the top: a kit config without its own rules file (most) does not
            # load the rules' models and the readout parser they use.
            from gatewayd.engine.meter_arrangement import load_rules

            try:
                load_rules(value)
            except ConfigError as exc:
                raise ValueError(f"the rules file is not usable: {exc}") from None
        return value
