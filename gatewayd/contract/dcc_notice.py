"""DCC notices as back offices publish them: the DCC Service Centre cannot reach a site.

Publications side of the flow, inbound half. A notice is an input to a running job
(``gatewayd.engine.dcc.DccInput``): before the verdict it ends the probes with the WAN abort. Back
offices publish it, not retained, either to one kit (``<prefix>/<kit_id>/dcc/notice``) or,
when they do not know which kit is on site, to every kit of a CSP region
(``<prefix>/region/<north|central|south>/dcc/notice``). Either way the notice names what it
concerns (job ids, MPANs, MPRNs) and a kit applies it only to a running job it names: a
region topic reaches hundreds of kits, and a notice that named nothing would abort them all.
"""

from __future__ import annotations

from typing import Annotated, Final, Self

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, model_validator

from gatewayd.config.errors import RuleViolations
from gatewayd.config.job import JobId, mpan_check_digit
from gatewayd.engine.outcomes import DccNotice

from .decode import MAX_REQUEST_BYTES, RECEIVED, ErrorDetail, decode_object, validate_payload

__all__ = ["MAX_NOTICE_TARGETS", "DccNoticeMessage", "parse_dcc_notice"]

# Enough for a street's worth of sites in one notice; more is a bulk feed, not a notice.
MAX_NOTICE_TARGETS: Final = 100


def _digits(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"write the {what} as a string (a number would lose leading zeros)")
    return value.replace(" ", "")


# A refused notice is logged: its MPANs and MPRNs are not repeated (they identify homes).
def _mpan(value: object) -> str:
    digits = _digits(value, "MPAN")
    if len(digits) != 13 or not digits.isascii() or not digits.isdigit():
        raise ValueError("not an MPAN core: 13 digits expected")
    if int(digits[12]) != mpan_check_digit(digits[:12]):
        raise ValueError("fails the MPAN check digit")
    return digits


def _mprn(value: object) -> str:
    digits = _digits(value, "MPRN")
    if not (6 <= len(digits) <= 10) or not digits.isascii() or not digits.isdigit():
        raise ValueError("not an MPRN: 6 to 10 digits expected")
    return digits


Mpan = Annotated[str, BeforeValidator(_mpan), Field(pattern=r"^[0-9]{13}$")]
Mprn = Annotated[str, BeforeValidator(_mprn), Field(pattern=r"^[0-9]{6,10}$")]


class DccNoticeMessage(BaseModel):
    """One DCC notice. Names at least one job id, MPAN or MPRN."""

    model_config = RECEIVED

    reference: str = Field(
        min_length=1,
        max_length=128,
        description="The DCC's reference for the notice; the same notice sent twice has the same",
    )
    received_at: AwareDatetime = Field(description="When the DCC Service Centre said so")
    not_before: AwareDatetime | None = Field(
        default=None, description="When DCC service is expected back; rebook from then"
    )
    text: str | None = Field(default=None, max_length=1000)
    job_ids: list[JobId] = Field(default=[], max_length=MAX_NOTICE_TARGETS)
    mpans: list[Mpan] = Field(default=[], max_length=MAX_NOTICE_TARGETS)
    mprns: list[Mprn] = Field(default=[], max_length=MAX_NOTICE_TARGETS)

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if not (self.job_ids or self.mpans or self.mprns):
            raise RuleViolations(
                [((), "name at least one of job_ids, mpans or mprns: whom does it concern?")]
            )
        return self

    def concerns(self, job_id: str, mpan: str | None = None, mprn: str | None = None) -> bool:
        """Whether this notice is about the job ``job_id`` at the site ``mpan``/``mprn``."""
        return (
            job_id in self.job_ids
            or (mpan is not None and mpan in self.mpans)
            or (mprn is not None and mprn in self.mprns)
        )

    def to_notice(self) -> DccNotice:
        """What the job's ``DccInput`` takes."""
        return DccNotice(
            received_at=self.received_at,
            not_before=self.not_before,
            reference=self.reference,
            text=self.text,
        )


def parse_dcc_notice(
    raw: bytes, max_bytes: int = MAX_REQUEST_BYTES
) -> DccNoticeMessage | ErrorDetail:
    """The notice in ``raw``, or why it is refused (for the log: notices get no response)."""
    decoded = decode_object(raw, max_bytes)
    if isinstance(decoded, ErrorDetail):
        return decoded
    return validate_payload(DccNoticeMessage, decoded, "dcc/notice")
