"""The catalogue of next actions: what someone owes a job after its verdict, in plain English.

Flow: probe outcomes -> verdict -> **next actions** -> publications. The verdict picks the
actions; this module owns their names (a closed list the back office can switch on) and the
words the installer and the back office read. The texts are our own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from gatewayd.engine.meter_type import ElectricityVariant

__all__ = [
    "Action",
    "NextAction",
    "fit_dual_band_hub",
    "install_amr",
    "monitor_and_reinstruct",
    "monitor_wan_and_reinstruct",
    "rebook_when_dcc_resumes",
    "replace_hub",
    "wait_for_variant",
]


class Action(enum.StrEnum):
    WAIT_FOR_VARIANT = "wait_for_variant"
    INSTALL_AMR = "install_amr"
    REBOOK_WHEN_DCC_RESUMES = "rebook_when_dcc_resumes"
    MONITOR_WAN_AND_REINSTRUCT = "monitor_wan_and_reinstruct"
    MONITOR_AND_REINSTRUCT = "monitor_and_reinstruct"
    FIT_DUAL_BAND_HUB = "fit_dual_band_hub"
    REPLACE_HUB = "replace_hub"


@dataclass(frozen=True, slots=True)
class NextAction:
    """One thing owed after the verdict. ``not_before``: do not act before this time."""

    action: Action
    text: str
    not_before: datetime | None = None


_VARIANT_WORDS = {
    ElectricityVariant.SINGLE_PHASE: "single-phase",
    ElectricityVariant.POLYPHASE: "polyphase (three-phase)",
    ElectricityVariant.TWIN_ELEMENT: "twin-element (5-terminal, for a switched heating load)",
}


def wait_for_variant(variant: ElectricityVariant) -> NextAction:
    return NextAction(
        Action.WAIT_FOR_VARIANT,
        f"This supply needs a {_VARIANT_WORDS[variant]} SMETS electricity meter and none was "
        "in the van. The supplier can book a new visit once that meter type is in stock.",
    )


def install_amr(*, ct: bool) -> NextAction:
    if ct:
        text = (
            "The site is metered through current transformers, and no SMETS meter is made "
            "for that. Arrange AMR or half-hourly metering instead; such sites are best "
            "screened out before a SMETS visit is booked."
        )
    else:
        text = (
            "Rather than wait for the right meter, the supplier can ask for AMR metering to "
            "be fitted at this site instead."
        )
    return NextAction(Action.INSTALL_AMR, text)


def rebook_when_dcc_resumes(not_before: datetime | None) -> NextAction:
    when = (
        f" Do not book before {not_before.isoformat()}, when the DCC expects to be back."
        if not_before is not None
        else " The DCC gave no date for its return; book once it confirms service is back."
    )
    return NextAction(
        Action.REBOOK_WHEN_DCC_RESUMES,
        "The DCC said it cannot reach the devices at this site, so nothing was fitted. Book "
        "a new visit for after the DCC service is restored; the supplier does not need to "
        "ask again." + when,
        not_before=not_before,
    )


def monitor_wan_and_reinstruct() -> NextAction:
    return NextAction(
        Action.MONITOR_WAN_AND_REINSTRUCT,
        "No WAN connection came up in time, and the supplier asked for such jobs to be "
        "abandoned rather than fitted without WAN. The supplier should keep an eye on WAN "
        "coverage at this address and send a new instruction once it is available.",
    )


def monitor_and_reinstruct() -> NextAction:
    return NextAction(
        Action.MONITOR_AND_REINSTRUCT,
        "The WAN works, but a required device did not join the home area network. The "
        "supplier should follow the site up and ask for a return visit once the cause is "
        "likely to have been dealt with.",
    )


def fit_dual_band_hub() -> NextAction:
    return NextAction(
        Action.FIT_DUAL_BAND_HUB,
        "The gas meter never joined within its joining window on this single-band (2.4 GHz) "
        "hub, which points to distance or walls in the way. Fit a dual-band hub on the "
        "return visit: its 868 MHz radio carries much better through walls.",
    )


def replace_hub() -> NextAction:
    return NextAction(
        Action.REPLACE_HUB,
        "The communications hub reported a modem or SIM fault and did not recover, even "
        "after being asked to reconnect. Replace the hub.",
    )
