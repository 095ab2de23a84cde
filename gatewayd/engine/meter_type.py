"""The meter type check: does the van carry a SMETS electricity meter that fits this supply?

Flow: the first stage of a job, before any bytes reach the hub: job (and the optical probe's
reading of the existing meter, when the kit has a probe) -> ``MeterTypeResult`` -> verdict.
It is pure: no I/O, no clock.

Only electricity has variants; a gas-only job passes (the check does not apply). A site
metered through current transformers (CT) never passes: no SMETS CT meter is made.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gatewayd.config.job import Fuel, Job, Supply
from gatewayd.engine.published import Facts, enum_value

if TYPE_CHECKING:
    # Only named in annotations: the meter reading's rules (and their readout parser) load when
    # a kit reads a meter, not with every module that checks a meter type.
    from gatewayd.engine.meter_arrangement import MeterReadingFacts

__all__ = [
    "ArrangementSource",
    "ElectricityVariant",
    "MeterTypeResult",
    "check_meter_type",
    "variant_for",
]


class ElectricityVariant(enum.StrEnum):
    """The SMETS electricity meter variants a van can carry."""

    SINGLE_PHASE = "single_phase"
    POLYPHASE = "polyphase"
    TWIN_ELEMENT = "twin_element"


class ArrangementSource(enum.StrEnum):
    """Where the supply arrangement used for the check came from."""

    JOB = "job"
    # Read off the existing meter by the optical probe; beats the job.
    METER = "meter"


def variant_for(supply: Supply) -> ElectricityVariant | None:
    """The variant a supply needs; None for CT, for which no SMETS meter exists."""
    if supply is Supply.CT:
        return None
    return ElectricityVariant(supply.value)


@dataclass(frozen=True, slots=True)
class MeterTypeResult:
    """What the check found.

    ``applicable`` is False for a job without electricity; such a result is ``available``.
    ``supply`` is the arrangement the check used, from ``source``; ``job_supply`` is what the
    job said, kept so a disagreement with the meter on the wall is on record.
    """

    applicable: bool
    available: bool
    supply: Supply | None
    source: ArrangementSource | None
    needed_variant: ElectricityVariant | None
    van_variants: tuple[ElectricityVariant, ...]
    job_supply: Supply | None = None
    # The optical probe's reading, when the kit read the meter; ``note`` says what the
    # reading did to the check (a mismatch, or why the job's value was used).
    meter: MeterReadingFacts | None = None
    note: str | None = None

    @property
    def is_ct(self) -> bool:
        return self.supply is Supply.CT

    @property
    def mismatch(self) -> bool:
        """The meter on the wall and the job disagree about the supply."""
        return (
            self.source is ArrangementSource.METER
            and self.job_supply is not None
            and self.job_supply != self.supply
        )

    def published(self) -> Facts:
        """Its fields as published (the result's ``meter_type``, the abort's evidence)."""
        return {
            "applicable": self.applicable,
            "available": self.available,
            "supply": enum_value(self.supply),
            "source": enum_value(self.source),
            "ct": self.is_ct,
            "needed_variant": enum_value(self.needed_variant),
            "van_variants": [v.value for v in self.van_variants],
            "job_supply": enum_value(self.job_supply),
            "mismatch": self.mismatch,
            "note": self.note,
            "meter": self.meter.published() if self.meter is not None else None,
        }


def check_meter_type(
    job: Job,
    van_variants: Iterable[ElectricityVariant],
    *,
    meter_supply: Supply | None = None,
    meter: MeterReadingFacts | None = None,
) -> MeterTypeResult:
    """Check the job's supply against the van's variants.

    ``meter_supply`` is the arrangement read from the existing meter, when one could be
    read; it takes precedence over the job's (the meter on the wall beats the paperwork).
    ``meter`` is the optical probe's reading: its arrangement, when it found one, is used
    the same way; an unreadable meter or an unknown arrangement leaves the job's value, with
    a note saying so.
    """
    if meter_supply is None and meter is not None:
        meter_supply = meter.supply
    van = tuple(dict.fromkeys(van_variants))
    if Fuel.ELECTRICITY not in job.fuels:
        return MeterTypeResult(
            applicable=False,
            available=True,
            supply=None,
            source=None,
            needed_variant=None,
            van_variants=van,
            job_supply=None,
        )
    if meter_supply is not None:
        supply, source = meter_supply, ArrangementSource.METER
    elif job.supply is not None:
        supply, source = job.supply, ArrangementSource.JOB
    else:  # the job model requires a supply with electricity; guard against a hand-built one
        raise ValueError(f"job {job.job_id} fits electricity but gives no supply")
    needed = variant_for(supply)
    return MeterTypeResult(
        applicable=True,
        available=needed is not None and needed in van,
        supply=supply,
        source=source,
        needed_variant=needed,
        van_variants=van,
        job_supply=job.supply,
        meter=meter,
        note=_note(meter, supply, source, job.supply),
    )


def _note(
    meter: MeterReadingFacts | None,
    supply: Supply,
    source: ArrangementSource,
    job_supply: Supply | None,
) -> str | None:
    if meter is None:
        return None
    if source is ArrangementSource.METER:
        if job_supply is not None and job_supply != supply:
            return (
                f"the meter on the wall shows a {supply.value} supply; the job said "
                f"{job_supply.value}: using the meter's"
            )
        return None
    if not meter.read:
        return f"the meter could not be read ({meter.error}); using the job's {supply.value}"
    return (
        f"the meter's readout does not show the supply arrangement; using the job's {supply.value}"
    )
