"""The kit's own configuration: its hub port(s), the van's meter variants, default timings.

Flow: the kit config is read once at start-up. Its hub ports feed the serial link (bytes),
its van variants feed the meter type check, and its deadlines and poll settings shape how
the probes turn hub events into outcomes. Every key has a default except the hub's port.

Rules beyond single keys (each reported at its key):

- give the hub as ``[hub]`` or as ``[[hubs]]``, not both; hub names are unique;
- ``van.electricity_variants`` cannot hold ``ct`` (no SMETS CT meter exists) or a variant
  twice;
- ``han.deadline_s`` is at least ``han.join_window_s``;
- ``poll.attempt_timeout_s / time_scale`` (the real time an attempt gets) is at least the
  hub protocol's own give-up time, 3 s, or every slow hub answer would be cut short.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatewayd.config.errors import (
    ConfigError,
    Loc,
    Problem,
    RuleViolations,
    read_toml,
    validate_document,
)
from gatewayd.config.job import MAX_DEADLINE_S, MAX_JOIN_ATTEMPTS, TimingOverrides
from gatewayd.config.mqtt import MqttConfig
from gatewayd.config.ops import LogConfig, MetricsConfig
from gatewayd.config.optical import OpticalProbeConfig
from gatewayd.config.survey import RadioConfig, SurveyConfig
from gatewayd.engine.meter_type import ElectricityVariant
from gatewayd.engine.retry import PollSettings, RetryPolicy
from gatewayd_drivers.commshub.messages import MAX_JOIN_TIMEOUT_S

__all__ = [
    "LSP_GIVE_UP_S",
    "HanConfig",
    "HubPort",
    "KitConfig",
    "StageTiming",
    "VanConfig",
    "WanConfig",
    "load_kit_config",
    "parse_kit_config",
]

# LSP spec section 7: resends after 1 s and 2 s, failed 1 s after the last one.
LSP_GIVE_UP_S = 3.0
MAX_TIME_SCALE = 10_000.0
HUB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

_STRICT = ConfigDict(extra="forbid", frozen=True)


class HubPort(BaseModel):
    """One Comms Hub reached over its Local Service Port."""

    model_config = _STRICT

    name: str = Field(
        default="hub",
        description="Short name used in logs and metric labels (never the device path)",
    )
    port: str = Field(min_length=1, description="Serial device, ideally /dev/serial/by-id/...")
    baudrate: int = Field(default=115_200, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not HUB_NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} must be 1 to 32 characters from A-Z, a-z, 0-9, '_' and '-' "
                "(it becomes a metric label)"
            )
        return value


class VanConfig(BaseModel):
    """What the van carries."""

    model_config = _STRICT

    electricity_variants: tuple[ElectricityVariant, ...] = (
        ElectricityVariant.SINGLE_PHASE,
        ElectricityVariant.POLYPHASE,
        ElectricityVariant.TWIN_ELEMENT,
    )

    @field_validator("electricity_variants", mode="before")
    @classmethod
    def _no_ct(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            problems: list[str] = []
            if any(isinstance(v, str) and v.strip().lower() == "ct" for v in value):
                problems.append(
                    "'ct' cannot be carried: no SMETS meter exists for sites metered "
                    "through current transformers (they get AMR / half-hourly metering)"
                )
            names = [v for v in value if isinstance(v, str)]
            if len(set(names)) != len(names):
                problems.append("a variant is listed twice")
            if problems:
                raise ValueError("; ".join(problems))
        return value


class WanConfig(BaseModel):
    """The WAN stage: how long to wait and when to ask the hub to re-attach."""

    model_config = _STRICT

    deadline_s: float = Field(default=1800.0, gt=0, le=MAX_DEADLINE_S)
    reconnect_after_searching_s: float = Field(
        default=300.0, gt=0, description="Ask the hub to re-attach after searching this long"
    )
    reconnect_on_fault: bool = Field(default=True, description="Ask the hub to re-attach on FAULT")
    max_reconnects: int = Field(default=3, ge=0, le=100, description="0: never ask")


class HanConfig(BaseModel):
    """The HAN stage: how long to wait and how each device's join is retried."""

    model_config = _STRICT

    deadline_s: float = Field(default=900.0, gt=0, le=MAX_DEADLINE_S)
    join_window_s: int = Field(default=180, ge=1, le=MAX_JOIN_TIMEOUT_S)
    join_attempts: int = Field(default=3, ge=1, le=MAX_JOIN_ATTEMPTS)

    @model_validator(mode="after")
    def _window_fits(self) -> Self:
        if self.deadline_s < self.join_window_s:
            raise RuleViolations(
                [
                    (
                        ("deadline_s",),
                        f"{self.deadline_s:g} s is shorter than join_window_s "
                        f"({self.join_window_s} s): no join window could run its course",
                    )
                ]
            )
        return self


@dataclass(frozen=True, slots=True)
class StageTiming:
    """The timings one job runs with: the kit's defaults with the job's overrides applied."""

    wan: RetryPolicy
    han: RetryPolicy
    join_window_s: int
    join_attempts: int
    reconnect_after_searching_s: float
    reconnect_on_fault: bool
    max_reconnects: int


class KitConfig(BaseModel):
    """The kit's configuration file, validated. Build it with ``load_kit_config``."""

    model_config = _STRICT

    hub: HubPort | None = None
    hubs: tuple[HubPort, ...] = ()
    van: VanConfig = VanConfig()
    wan: WanConfig = WanConfig()
    han: HanConfig = HanConfig()
    poll: PollSettings = PollSettings()
    time_scale: float = Field(
        default=1.0, gt=0, le=MAX_TIME_SCALE, description="Simulation only: site time speed-up"
    )
    mqtt: MqttConfig | None = None
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    # The optical probe (IEC 62056-21) that reads the existing meter; absent: no probe.
    optical: OpticalProbeConfig | None = None
    # The kit's own Zigbee radio for RF surveys, and how a survey judges (docs/rf-survey.md).
    radio: RadioConfig | None = None
    survey: SurveyConfig = SurveyConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.hub is not None and self.hubs:
            problems.append((("hubs",), "give either [hub] or [[hubs]], not both"))
        if self.hub is None and not self.hubs:
            problems.append(
                (("hub",), "required: a [hub] table with the hub's serial port, e.g. port = ...")
            )
        seen: dict[str, int] = {}
        for i, h in enumerate(self.hubs):
            if h.name in seen:
                problems.append(
                    (("hubs", i, "name"), f"{h.name!r} is already the name of hubs[{seen[h.name]}]")
                )
            seen.setdefault(h.name, i)
        real_attempt_s = self.poll.attempt_timeout_s / self.time_scale
        if real_attempt_s < LSP_GIVE_UP_S:
            problems.append(
                (
                    ("poll", "attempt_timeout_s"),
                    f"{self.poll.attempt_timeout_s:g} s of site time is {real_attempt_s:g} s of "
                    f"real time at time_scale {self.time_scale:g}, shorter than the hub "
                    f"protocol's own {LSP_GIVE_UP_S:g} s give-up; use at least "
                    f"{LSP_GIVE_UP_S * self.time_scale:g}",
                )
            )
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def all_hubs(self) -> tuple[HubPort, ...]:
        return (self.hub,) if self.hub is not None else self.hubs

    @property
    def default_hub(self) -> HubPort:
        """The hub a job uses when it does not name one: ``[hub]`` or the first ``[[hubs]]``."""
        return self.all_hubs[0]

    def hub_named(self, name: str) -> HubPort:
        for h in self.all_hubs:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.all_hubs)
        raise KeyError(f"no hub named {name!r} in the kit config (known: {known})")

    def timing(
        self, overrides: TimingOverrides | None = None, *, source: str = "<job timing>"
    ) -> StageTiming:
        """The kit's timings with a job's ``[timing]`` overrides applied.

        Raises ``ConfigError`` (naming ``source``) when the combination breaks a rule that
        each file kept on its own, e.g. a job's HAN deadline under the kit's join window.
        """
        o = overrides or TimingOverrides()
        wan_deadline = o.wan_deadline_s if o.wan_deadline_s is not None else self.wan.deadline_s
        han_deadline = o.han_deadline_s if o.han_deadline_s is not None else self.han.deadline_s
        window = o.join_window_s if o.join_window_s is not None else self.han.join_window_s
        attempts = o.join_attempts if o.join_attempts is not None else self.han.join_attempts
        if han_deadline < window:
            raise ConfigError(
                source,
                [
                    Problem(
                        "timing",
                        f"HAN deadline {han_deadline:g} s is shorter than the join window "
                        f"{window} s once the job's timing is applied to the kit's",
                    )
                ],
            )
        return StageTiming(
            wan=RetryPolicy.from_settings(self.poll, wan_deadline),
            han=RetryPolicy.from_settings(self.poll, han_deadline),
            join_window_s=window,
            join_attempts=attempts,
            reconnect_after_searching_s=self.wan.reconnect_after_searching_s,
            reconnect_on_fault=self.wan.reconnect_on_fault,
            max_reconnects=self.wan.max_reconnects,
        )


def parse_kit_config(data: Mapping[str, Any], source: str = "<kit config>") -> KitConfig:
    """Validate a kit config given as a mapping. Raises ``ConfigError``."""
    return validate_document(KitConfig, data, source)


def load_kit_config(path: str | os.PathLike[str]) -> KitConfig:
    """Read and validate the kit config file (TOML). Raises ``ConfigError``."""
    return parse_kit_config(read_toml(path), source=str(path))
