"""Probe outcomes: what each stage found, as plain immutable facts for the verdict.

Flow: hub state and events -> **probe outcomes** -> verdict -> publications. The WAN and
HAN probes (and the engine that runs them) fill these records; the verdict reads them. Each
record's ``published()`` is the one place that names its fields as they are published and
writes them (enums as names, EUI-64s as text): the verdict's evidence picks from it and the
result document is validated from it. Nothing here does I/O.

Conventions: times in seconds are *site* seconds since the stage started (the probe's
``Clock``); ``None`` means "never happened" or "not known", never zero.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gatewayd.config.job import Device, Job
from gatewayd.engine.meter_type import MeterTypeResult
from gatewayd.engine.published import Facts, enum_label, enum_value
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    CspRegion,
    DeviceType,
    HubInfo,
    HwVariant,
    WanState,
    WanVariant,
)

__all__ = [
    "Cancelled",
    "DccNotice",
    "DeviceOutcome",
    "Ending",
    "Failed",
    "HanOutcome",
    "HubFacts",
    "JoinFailure",
    "RssiSample",
    "RunFacts",
    "SurveyEvidence",
    "SurveyJudgement",
    "WanOutcome",
    "enum_label",  # kept here for the parts outside the engine that import it from here
]


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")


# --- WAN -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RssiSample:
    """One WAN signal reading: ``t_s`` site seconds into the stage, ``dbm`` as reported."""

    t_s: float
    dbm: int

    def published(self) -> Facts:
        return {"t_s": self.t_s, "dbm": self.dbm}


@dataclass(frozen=True, slots=True)
class WanOutcome:
    """What the WAN probe saw.

    - ``established``: the hub reported CONNECTED before ``deadline_s`` (a later drop does not
      undo it; see ``dropped_after_connect``).
    - ``final_state``: the last WAN state read or reported (None if none ever was).
    - ``attempts``: WAN attach attempts, as the hub's ATTACH_ATTEMPTS counter last said.
    - ``polls``: GET_WAN_STATUS reads the probe made.
    - ``reconnects``: WAN_RECONNECT commands the probe sent.
    - ``stuck_in_fault``: the hub was in FAULT when the stage ended (reconnects did not help).
    - ``error``: why the probe ended early, when it did (text for people).
    """

    established: bool
    final_state: WanState | int | None
    deadline_s: float
    attempts: int = 0
    polls: int = 0
    reconnects: int = 0
    time_to_registered_s: float | None = None
    time_to_connected_s: float | None = None
    rssi_trail: tuple[RssiSample, ...] = ()
    stuck_in_fault: bool = False
    dropped_after_connect: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        if self.established and self.time_to_connected_s is None:
            raise ValueError("an established WAN needs time_to_connected_s")

    def published(self) -> Facts:
        return {
            "established": self.established,
            "final_state": enum_label(self.final_state),
            "deadline_s": self.deadline_s,
            "attempts": self.attempts,
            "polls": self.polls,
            "reconnects": self.reconnects,
            "time_to_registered_s": self.time_to_registered_s,
            "time_to_connected_s": self.time_to_connected_s,
            "rssi_trail": [s.published() for s in self.rssi_trail],
            "stuck_in_fault": self.stuck_in_fault,
            "dropped_after_connect": self.dropped_after_connect,
            "error": self.error,
        }


# --- HAN -----------------------------------------------------------------------


class JoinFailure(enum.StrEnum):
    """Why a device's last join did not hold."""

    WINDOW_EXPIRED = "window_expired"  # the join window closed without a join
    KEY_ESTABLISHMENT_FAILED = "key_establishment_failed"  # heard, but keys did not agree
    LOST = "lost"  # joined, then no longer heard
    HUB_ERROR = "hub_error"  # the hub refused the device log entry (e.g. log full)


class SurveyJudgement(enum.StrEnum):
    """An RF survey's judgement of how well the hub is heard where the device stands."""

    GOOD = "good"
    MARGINAL = "marginal"
    NOT_HEARD = "not_heard"


@dataclass(frozen=True, slots=True)
class SurveyEvidence:
    """The RF survey a failing device's verdict rests on: taken where the device stands.

    ``source``: how it came (``prompt`` on the installer's terminal, ``stored`` from an
    earlier ``gatewayd survey --at``, ``mqtt`` from a survey request). ``hub_*`` are None
    when the hub was not heard.
    """

    position: str
    taken_at: datetime
    judgement: SurveyJudgement
    reasons: tuple[str, ...]
    source: str
    hub_channel: int | None = None
    hub_lqi: int | None = None
    hub_rssi_dbm_estimate: int | None = None
    hub_channel_energy: int | None = None
    scans: int = 0
    scans_heard: int = 0

    def __post_init__(self) -> None:
        _require_aware(self.taken_at, "taken_at")

    def published(self) -> Facts:
        return {
            "position": self.position,
            "taken_at": self.taken_at,
            "judgement": self.judgement.value,
            "reasons": list(self.reasons),
            "source": self.source,
            "hub_channel": self.hub_channel,
            "hub_lqi": self.hub_lqi,
            "hub_rssi_dbm_estimate": self.hub_rssi_dbm_estimate,
            "hub_channel_energy": self.hub_channel_energy,
            "scans": self.scans,
            "scans_heard": self.scans_heard,
        }


@dataclass(frozen=True, slots=True)
class DeviceOutcome:
    """One device's HAN result.

    ``probed``: the device was added to the hub's device log during this job.
    ``attempts``: join windows opened for it. ``seconds_to_join``: from the first window
    opening to the join. ``band``, ``rssi_dbm``, ``lqi``: as the device log last reported.
    """

    eui64: Eui64
    type: DeviceType
    required: bool
    probed: bool
    joined: bool
    attempts: int = 0
    seconds_to_join: float | None = None
    band: Band | int | None = None
    rssi_dbm: int | None = None
    lqi: int | None = None
    last_failure: JoinFailure | None = None
    survey: SurveyJudgement | None = None
    survey_evidence: SurveyEvidence | None = None

    @classmethod
    def not_probed(cls, device: Device) -> DeviceOutcome:
        return cls(
            eui64=device.eui64,
            type=device.type,
            required=device.required,
            probed=False,
            joined=False,
        )

    def published(self) -> Facts:
        """Its fields as published; ``required`` is the device's own word (see the result)."""
        return {
            "eui64": str(self.eui64),
            "type": self.type.name,
            "required": self.required,
            "probed": self.probed,
            "joined": self.joined,
            "attempts": self.attempts,
            "seconds_to_join": self.seconds_to_join,
            "band": _band_label(self.band),
            "rssi": self.rssi_dbm,
            "lqi": self.lqi,
            "last_failure": enum_value(self.last_failure),
            "survey": enum_value(self.survey),
            "survey_evidence": (
                self.survey_evidence.published() if self.survey_evidence is not None else None
            ),
        }


# Bands publish as their frequencies (``2.4ghz``), not as the hub enum's names (``ghz_2_4``).
_BAND_LABELS = {0: "2.4ghz", 1: "868mhz"}


def _band_label(band: int | None) -> str | None:
    if band is None:
        return None
    return _BAND_LABELS.get(int(band), f"unknown({int(band)})")


@dataclass(frozen=True, slots=True)
class HanOutcome:
    """What the HAN probe saw; ``probed`` False when the stage never ran."""

    probed: bool
    devices: tuple[DeviceOutcome, ...]
    error: str | None = None

    @classmethod
    def not_probed(cls, devices: Iterable[Device]) -> HanOutcome:
        """Every device listed as not probed (e.g. no WAN under Install and Leave)."""
        return cls(probed=False, devices=tuple(DeviceOutcome.not_probed(d) for d in devices))

    def device(self, eui64: Eui64) -> DeviceOutcome | None:
        for d in self.devices:
            if d.eui64 == eui64:
                return d
        return None


# --- hub, DCC, endings ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubFacts:
    """The hub's identity, from GET_INFO."""

    eui64: Eui64
    hw_variant: HwVariant | int
    wan_variant: WanVariant | int | None = None
    csp_region: CspRegion | int | None = None
    firmware: str | None = None

    @classmethod
    def from_info(cls, info: HubInfo) -> HubFacts:
        return cls(
            eui64=info.eui64,
            hw_variant=info.hw_variant,
            wan_variant=info.wan_variant,
            csp_region=info.csp_region,
            firmware=info.firmware,
        )

    def published(self) -> Facts:
        return {
            "eui64": str(self.eui64),
            # enum_label gives None only for None, which a hub's variant never is.
            "hw_variant": enum_label(self.hw_variant) or "unknown",
            "wan_variant": enum_label(self.wan_variant),
            "csp_region": enum_label(self.csp_region),
            "firmware": self.firmware,
        }

    @property
    def single_band(self) -> bool:
        """Known to be single band (an unlisted variant number is not assumed either way)."""
        return self.hw_variant == HwVariant.SINGLE_BAND


@dataclass(frozen=True, slots=True)
class DccNotice:
    """The DCC Service Centre's word that it cannot communicate with the site's devices.

    ``not_before``: when DCC service is expected back, if the notice said.
    """

    received_at: datetime
    not_before: datetime | None = None
    reference: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.received_at, "received_at")
        _require_aware(self.not_before, "not_before")

    def published(self) -> Facts:
        return {
            "received_at": self.received_at,
            "not_before": self.not_before,
            "reference": self.reference,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job was stopped on purpose; ``by`` is e.g. ``installer`` or ``back_office``."""

    by: str
    reason: str | None = None

    def published(self) -> Facts:
        return {"by": self.by, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Failed:
    """The kit could not do its part (e.g. it could not talk to its own hub).

    ``stage``: where it happened (``wan``, ``han``, ...), when known.
    """

    reason: str
    stage: str | None = None

    def published(self) -> Facts:
        return {"reason": self.reason, "stage": self.stage}


Ending = Cancelled | Failed


@dataclass(frozen=True, slots=True)
class RunFacts:
    """Everything one job run established, handed to the verdict and the result builder.

    Fill what the run got to: ``wan`` once the WAN stage ran, ``han`` once the HAN stage ran
    (or leave it None and the result lists the devices as not probed), ``dcc_notice`` only
    for a notice received before the verdict, ``ending`` when the run was cancelled or
    failed.
    """

    job: Job
    meter_type: MeterTypeResult
    wan: WanOutcome | None = None
    han: HanOutcome | None = None
    hub: HubFacts | None = None
    dcc_notice: DccNotice | None = None
    ending: Ending | None = None
