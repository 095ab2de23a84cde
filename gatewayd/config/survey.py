"""The kit config's ``[radio]`` and ``[survey]`` tables: the survey stick and its judgement.

Flow: read once at start-up with the rest of the kit config. ``[radio]`` says where the
kit's ZNP stick is; ``[survey]`` holds the scan settings and the thresholds that turn what
the stick hears into good / marginal / not heard (reasoning in docs/rf-survey.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatewayd.config.errors import RuleViolations

__all__ = ["RadioConfig", "SurveyConfig"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class RadioConfig(BaseModel):
    """The kit's own Zigbee radio: a TI Z-Stack 3.x stick speaking ZNP (MT) over USB serial."""

    model_config = _STRICT

    port: str = Field(min_length=1, description="Serial device, ideally /dev/serial/by-id/...")
    baudrate: int = Field(default=115_200, gt=0)


class SurveyConfig(BaseModel):
    """How a survey scans, and where its judgement draws the lines."""

    model_config = _STRICT

    channels: tuple[int, ...] = Field(
        default=tuple(range(11, 27)), min_length=1, description="2.4 GHz channels to survey"
    )
    beacon_scans: int = Field(default=2, ge=1, le=10, description="Network discoveries per survey")
    scan_duration: int = Field(
        default=3, ge=0, le=5, description="802.15.4 scan exponent per channel (3: 138 ms)"
    )
    good_lqi: int = Field(default=80, ge=1, le=255, description="Hub LQI at or above: good")
    busy_energy: int = Field(
        default=150, ge=1, le=255, description="Energy on the hub's channel at or above: busy"
    )
    lqi_floor_dbm: int = Field(default=-97, ge=-120, le=0, description="RSSI that LQI 0 means")
    lqi_ceiling_dbm: int = Field(default=10, ge=-50, le=30, description="RSSI that LQI 255 means")
    max_age_s: float = Field(
        default=4 * 3600.0, gt=0, description="A stored survey older than this is not used"
    )
    store_dir: Path | None = Field(
        default=None, description="Where surveys are kept between commands (None: memory only)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, ch in enumerate(self.channels):
            if not 11 <= ch <= 26:
                problems.append((("channels", i), f"{ch} is not a 2.4 GHz Zigbee channel (11..26)"))
        if len(set(self.channels)) != len(self.channels):
            problems.append((("channels",), "a channel is listed twice"))
        if self.lqi_ceiling_dbm <= self.lqi_floor_dbm:
            problems.append((("lqi_ceiling_dbm",), "must be above lqi_floor_dbm"))
        if problems:
            raise RuleViolations(problems)
        return self

    def rssi_estimate(self, lqi: int) -> int:
        """The RSSI an LQI stands for: Z-Stack maps RSSI linearly between floor and ceiling."""
        span = self.lqi_ceiling_dbm - self.lqi_floor_dbm
        return round(self.lqi_floor_dbm + lqi * span / 255)
