"""The verdict engine: from a run's facts to an outcome, a SMETS abort reason and next actions.

Flow: probe outcomes -> **verdict** -> publications. Pure: it reads ``RunFacts`` and returns a
``Verdict``; it never awaits, logs or reads a clock, so every rule is table-tested.

Precedence, first match wins (the domain's rules, plus the choices noted):

1. **Meter type** (electricity only): no fitting variant in the van -> aborted,
   ``SMETS_METER_TYPE_NOT_AVAILABLE``; CT -> ``install_amr``; any other supply ->
   ``wait_for_variant`` and ``install_amr``. The check runs before anything else, so nothing
   later can have happened; it also beats a DCC notice, since rebooking for when the DCC is
   back would still find no meter to fit.
2. **DCC notice** (only one received before the verdict is passed in) -> aborted,
   ``UNABLE_TO_ESTABLISH_WAN`` with ``rebook_when_dcc_resumes`` under either policy, whatever
   the probes saw, and even if the run was also cancelled or failed: the DCC's word that the
   site cannot be served now is what the back office must act on, and the rebook it calls
   for is due whoever stopped the run.
3. **Cancelled** -> ``cancelled``, no abort, no next actions: someone chose to stop; nothing
   is owed by the supplier, and the reason travels in the result.
4. **Failed** (the kit could not talk to its hub) -> ``failed``, no abort, no next actions:
   none of the supplier-facing actions fits a fault in the kit; what to check is in the
   result's failure reason, for the installer.
5. **WAN** not established by the deadline: ``abort_on_no_wan`` -> aborted,
   ``UNABLE_TO_ESTABLISH_WAN`` with ``monitor_wan_and_reinstruct``; ``install_and_leave`` ->
   ``installed_no_wan`` with nothing owed (the HAN is not probed and is ignored here).
6. **HAN**: a *required* device (per the job) that did not join -> aborted,
   ``UNABLE_TO_ESTABLISH_HAN`` with ``monitor_and_reinstruct``, plus ``fit_dual_band_hub``
   when a failing required GSME's join window expired on a hub known to be single band and
   no RF survey judged the hub well heard there; the evidence then says why under
   ``dual_band_advice`` (the survey at the meter marginal or not heard, with its reasons, or
   no survey taken there). A failing device with a survey at its position carries it under
   ``survey_evidence``. Optional devices are reported, never
   aborted on. A required device missing from the HAN outcome counts as not joined.
7. Otherwise ``commissioned``.

When the WAN outcome says the hub ended stuck in FAULT, ``replace_hub`` follows the other
actions in every verdict from 2, 5, 6 and 7 (both policies; the outcome itself is unchanged,
so Install and Leave stays ``installed_no_wan``): a faulty hub stays faulty for the next visit,
whatever decided the verdict. Cancelled and failed runs owe nothing, so they do not get it.

Evidence fields are picked from each record's ``published()``, the same mapping the result
document is built from, so a field reads alike in both.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from gatewayd.config.job import Policy
from gatewayd.engine.meter_type import MeterTypeResult
from gatewayd.engine.next_actions import (
    NextAction,
    fit_dual_band_hub,
    install_amr,
    monitor_and_reinstruct,
    monitor_wan_and_reinstruct,
    rebook_when_dcc_resumes,
    replace_hub,
    wait_for_variant,
)
from gatewayd.engine.outcomes import (
    Cancelled,
    DccNotice,
    DeviceOutcome,
    Failed,
    HubFacts,
    JoinFailure,
    RunFacts,
    SurveyJudgement,
    WanOutcome,
)
from gatewayd.engine.published import as_json, pick
from gatewayd_drivers.commshub.messages import DeviceType

__all__ = [
    "ABORT_TITLES",
    "Abort",
    "AbortCode",
    "Outcome",
    "Stage",
    "Verdict",
    "VerdictInputError",
    "decide",
]


class Outcome(enum.StrEnum):
    COMMISSIONED = "commissioned"
    INSTALLED_NO_WAN = "installed_no_wan"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AbortCode(enum.StrEnum):
    SMETS_METER_TYPE_NOT_AVAILABLE = "SMETS_METER_TYPE_NOT_AVAILABLE"
    UNABLE_TO_ESTABLISH_WAN = "UNABLE_TO_ESTABLISH_WAN"
    UNABLE_TO_ESTABLISH_HAN = "UNABLE_TO_ESTABLISH_HAN"


# The industry's own titles: the back office matches on these words.
ABORT_TITLES: Mapping[AbortCode, str] = {
    AbortCode.SMETS_METER_TYPE_NOT_AVAILABLE: "SMETS Meter Type Not Available",
    AbortCode.UNABLE_TO_ESTABLISH_WAN: "Unable to Establish WAN - Meter Not Installed",
    AbortCode.UNABLE_TO_ESTABLISH_HAN: "Unable to Establish HAN - Meter Not Installed",
}


class Stage(enum.StrEnum):
    """The stage whose finding decided the verdict."""

    METER_TYPE = "meter_type"
    DCC_NOTICE = "dcc_notice"
    WAN = "wan"
    HAN = "han"


@dataclass(frozen=True, slots=True)
class Abort:
    """A SMETS abort: its code, the industry title, and the facts that justify it."""

    code: AbortCode
    evidence: dict[str, JsonValue] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return ABORT_TITLES[self.code]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict on one run. ``stage`` is None for cancelled and failed runs."""

    outcome: Outcome
    abort: Abort | None
    next_actions: tuple[NextAction, ...]
    stage: Stage | None

    def __post_init__(self) -> None:
        if (self.outcome is Outcome.ABORTED) != (self.abort is not None):
            raise ValueError("an abort goes with the aborted outcome, and only with it")

    @property
    def abort_code(self) -> AbortCode | None:
        return self.abort.code if self.abort is not None else None


class VerdictInputError(ValueError):
    """The facts handed to ``decide`` cannot come from a real run (a caller's bug)."""


def decide(facts: RunFacts) -> Verdict:
    """The verdict on a run (precedence in the module docstring)."""
    mt = facts.meter_type
    if mt.applicable and not mt.available:
        return _meter_type_abort(mt)
    fault = _fault_actions(facts.wan)
    if facts.dcc_notice is not None:
        return _dcc_abort(facts.dcc_notice, facts, fault)
    if isinstance(facts.ending, Cancelled):
        return Verdict(Outcome.CANCELLED, None, (), None)
    if isinstance(facts.ending, Failed):
        return Verdict(Outcome.FAILED, None, (), None)

    wan = facts.wan
    if wan is None:
        raise VerdictInputError(
            "no WAN outcome: a run that was neither cancelled nor failed must have probed the WAN"
        )
    if not wan.established:
        if facts.job.policy is Policy.ABORT_ON_NO_WAN:
            abort = Abort(AbortCode.UNABLE_TO_ESTABLISH_WAN, _wan_evidence(wan))
            return Verdict(
                Outcome.ABORTED, abort, (monitor_wan_and_reinstruct(), *fault), Stage.WAN
            )
        return Verdict(Outcome.INSTALLED_NO_WAN, None, fault, Stage.WAN)

    han = facts.han
    if han is None or not han.probed:
        raise VerdictInputError("the WAN was established, so the HAN must have been probed")
    failing = [
        han.device(dev.eui64) or DeviceOutcome.not_probed(dev) for dev in facts.job.required_devices
    ]
    failing = [d for d in failing if not d.joined]
    if failing:
        actions: list[NextAction] = [monitor_and_reinstruct()]
        evidence = _han_evidence(failing, facts.hub)
        dual_band = [d for d in failing if _dual_band_would_help(d, facts.hub)]
        if dual_band:
            actions.append(fit_dual_band_hub())
            evidence["dual_band_advice"] = [_dual_band_why(d) for d in dual_band]
        abort = Abort(AbortCode.UNABLE_TO_ESTABLISH_HAN, evidence)
        return Verdict(Outcome.ABORTED, abort, (*actions, *fault), Stage.HAN)
    return Verdict(Outcome.COMMISSIONED, None, fault, Stage.HAN)


def _fault_actions(wan: WanOutcome | None) -> tuple[NextAction, ...]:
    return (replace_hub(),) if wan is not None and wan.stuck_in_fault else ()


def _meter_type_abort(mt: MeterTypeResult) -> Verdict:
    if mt.is_ct or mt.needed_variant is None:
        actions: tuple[NextAction, ...] = (install_amr(ct=True),)
    else:
        actions = (wait_for_variant(mt.needed_variant), install_amr(ct=False))
    published = mt.published()
    evidence = pick(published, "supply", "source", "ct", "needed_variant", "van_variants")
    if mt.mismatch and mt.job_supply is not None:
        evidence |= pick(published, "job_supply")
    abort = Abort(AbortCode.SMETS_METER_TYPE_NOT_AVAILABLE, evidence)
    return Verdict(Outcome.ABORTED, abort, actions, Stage.METER_TYPE)


def _dcc_abort(notice: DccNotice, facts: RunFacts, fault: tuple[NextAction, ...]) -> Verdict:
    evidence: dict[str, JsonValue] = {
        "reason": "dcc_notice",
        **pick(notice.published(), "received_at", "not_before", "reference"),
        "wan_established": facts.wan.established if facts.wan is not None else None,
    }
    if isinstance(facts.ending, Cancelled):
        evidence["also_cancelled_by"] = facts.ending.by
    elif isinstance(facts.ending, Failed):
        evidence["also_failed"] = facts.ending.reason
    abort = Abort(AbortCode.UNABLE_TO_ESTABLISH_WAN, evidence)
    actions = (rebook_when_dcc_resumes(notice.not_before), *fault)
    return Verdict(Outcome.ABORTED, abort, actions, Stage.DCC_NOTICE)


def _wan_evidence(wan: WanOutcome) -> dict[str, JsonValue]:
    return {
        "reason": "no_wan_by_deadline",
        "policy": Policy.ABORT_ON_NO_WAN.value,
        **pick(
            wan.published(),
            "final_state",
            "deadline_s",
            "attempts",
            "reconnects",
            "stuck_in_fault",
            "error",
        ),
    }


def _dual_band_would_help(device: DeviceOutcome, hub: HubFacts | None) -> bool:
    # A key-establishment failure means the meter was heard: radio reach is not the problem.
    # Unknown hub hardware is not assumed single band: a needless hub swap costs a visit.
    return (
        device.type is DeviceType.GSME
        and device.last_failure is JoinFailure.WINDOW_EXPIRED
        and hub is not None
        and hub.single_band
        and device.survey is not SurveyJudgement.GOOD
    )


def _dual_band_why(d: DeviceOutcome) -> dict[str, JsonValue]:
    """Why a dual-band hub is advised for ``d``, in words and in codes."""
    head = (
        f"The {d.type.name} {d.eui64} never joined within its join window on this "
        "single-band (2.4 GHz) hub"
    )
    ev = d.survey_evidence
    if d.survey is SurveyJudgement.NOT_HEARD:
        basis = "survey_not_heard"
        text = f"{head}, and an RF survey at the meter did not hear the hub's network at all."
    elif d.survey is SurveyJudgement.MARGINAL:
        basis = "survey_marginal"
        why = f": {'; '.join(ev.reasons)}" if ev is not None and ev.reasons else " there"
        text = f"{head}, and an RF survey at the meter found the hub only marginal{why}."
    else:
        basis = "no_survey"
        text = (
            f"{head}; no RF survey was taken at the meter, so weak reach is the likely "
            "cause but was not measured."
        )
    return {"eui64": str(d.eui64), "basis": basis, "text": text}


def _device_evidence(d: DeviceOutcome) -> dict[str, JsonValue]:
    published = d.published()
    out = pick(published, "eui64", "type", "probed", "attempts", "last_failure", "survey")
    # Without a survey the key is left out rather than null, as the evidence has always been.
    if d.survey_evidence is not None:
        out |= pick(published, "survey_evidence")
    return out


def _han_evidence(failing: list[DeviceOutcome], hub: HubFacts | None) -> dict[str, JsonValue]:
    devices: list[JsonValue] = [_device_evidence(d) for d in failing]
    return {
        "failing_devices": devices,
        "hub_hw_variant": as_json(hub.published()["hw_variant"]) if hub is not None else None,
    }
