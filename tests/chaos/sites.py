"""The sites the chaos runs commission: a hub scenario, a job, and the verdict it must reach.

The expected verdict is what the scenario and the job decide on a calm line (no kill, no
pull, no noise); the harness compares every published result with it. The hub keeps its
state between jobs (a WAN that came up stays up, a device that joined stays in the log),
and every profile below reaches the same verdict on its first job and on every later one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# The dual-fuel job of examples/jobs/dual-fuel.toml, with the three devices every shipped
# scenario describes (ESME A1, GSME A2, IHD A3).
_BASE_JOB: dict[str, Any] = {
    "fuels": ["electricity", "gas"],
    "mpan": "1600123456785",
    "mprn": "7654321012",
    "supply": "single_phase",
    "policy": "install_and_leave",
    "devices": [
        {
            "eui64": "00-DB-12-34-56-78-90-A1",
            "type": "ESME",
            "install_code": "3F1A9C0E5B7D2468ACE013579BDF0246",
        },
        {
            "eui64": "00-DB-12-34-56-78-90-A2",
            "type": "GSME",
            "install_code": "8E2C4A6F1B3D5079E1C3A5F7092B4D6E",
        },
        {
            "eui64": "00-DB-12-34-56-78-90-A3",
            "type": "IHD",
            "install_code": "C0FFEE1234567890ABCDEF0123456789",
        },
    ],
}
# Site seconds: at the kit's 50x, 2 real seconds. Only for the sites with no WAN, so they do
# not hold their hub for long; a site whose WAN comes up keeps the kit's 300 s, since a
# resend on a noisy line takes a real second (50 site seconds) whatever the time scale.
_SHORT_WAN_WAIT = ("timing", {"wan_deadline_s": 100})


@dataclass(frozen=True)
class Expected:
    outcome: str
    abort: str | None = None

    def __str__(self) -> str:
        return self.outcome if self.abort is None else f"{self.outcome} {self.abort}"


@dataclass(frozen=True)
class Site:
    """One kind of site: the simulator's scenario, what the job changes, the verdict."""

    name: str
    scenario: str
    expected: Expected
    job_changes: tuple[tuple[str, Any], ...] = ()

    def job(self, job_id: str) -> dict[str, Any]:
        doc = copy.deepcopy(_BASE_JOB)
        doc.update(dict(self.job_changes))
        doc["job_id"] = job_id
        return doc


COMMISSIONED = Expected("commissioned")

SITES: tuple[Site, ...] = (
    Site("quick", "quick", COMMISSIONED),
    Site("second-window", "gsme_second_window", COMMISSIONED),
    Site(
        "ct",
        "quick",
        Expected("aborted", "SMETS_METER_TYPE_NOT_AVAILABLE"),
        (("supply", "ct"),),
    ),
    Site("no-wan-leave", "wan_never", Expected("installed_no_wan"), (_SHORT_WAN_WAIT,)),
    Site(
        "no-wan-abort",
        "wan_never",
        Expected("aborted", "UNABLE_TO_ESTABLISH_WAN"),
        (("policy", "abort_on_no_wan"), _SHORT_WAN_WAIT),
    ),
    Site(
        "gas-out-of-reach", "gsme_never_single_band", Expected("aborted", "UNABLE_TO_ESTABLISH_HAN")
    ),
    Site("ihd-fails", "ihd_fails", COMMISSIONED),
    Site("gas-key-failure", "gsme_key_failure", Expected("aborted", "UNABLE_TO_ESTABLISH_HAN")),
)


def site_for_hub(index: int) -> Site:
    """The site behind the kit's ``index``-th hub: the eight kinds in turn."""
    return SITES[index % len(SITES)]
