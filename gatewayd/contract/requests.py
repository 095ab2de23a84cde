"""Requests a back office sends on ``request/<command>`` and the kit's ``response/<command>``.

Publications side of the flow: the one place where the outside world talks back. Every
request carries a ``transaction`` that the response echoes (zigbee2mqtt's convention), so a
back office can match answers to questions over a topic shared by all its requests.
``parse_request`` never raises: bad input of any kind becomes an ``ErrorResponse`` with a
reason naming the key at fault, and with the transaction when it could be read.

A response is either the command's own success model (``ok: true``) or ``ErrorResponse``
(``ok: false``); the daemon adds the checks that need its state (unknown hub or job, a hub
already busy) with ``ErrorResponse.refusing``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from gatewayd.config.job import Job, JobId
from gatewayd.engine.progress import Stage as ProgressStage
from gatewayd.survey.store import position_key
from gatewayd_drivers.commshub.eui64 import Eui64

from .decode import (
    MAX_REQUEST_BYTES,
    RECEIVED,
    ErrorCode,
    ErrorDetail,
    decode_object,
    validate_payload,
)
from .messages import PUBLISHED, Level, Presence
from .topics import Command

__all__ = [
    "REQUEST_MODELS",
    "RESPONSE_MODELS",
    "CancelJobRequest",
    "CancelJobResponse",
    "ErrorResponse",
    "HubStatusDoc",
    "OutboxDoc",
    "RebirthRequest",
    "RebirthResponse",
    "Request",
    "Response",
    "RunningJobDoc",
    "StartJobRequest",
    "StartJobResponse",
    "StatusRequest",
    "StatusResponse",
    "SurveyRequest",
    "SurveyResponse",
    "parse_request",
]

_log = logging.getLogger(__name__)

MAX_TRANSACTION_CHARS: Final = 128

Transaction = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TRANSACTION_CHARS,
        description="Chosen by the requester; echoed in the response",
    ),
]


# --- requests -------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = RECEIVED

    command: ClassVar[Command]
    transaction: Transaction


class StartJobRequest(_Request):
    """Run a job: the same document as a job file, as JSON (``gatewayd.config.job``)."""

    command: ClassVar[Command] = Command.START_JOB
    hub: Level | None = Field(
        default=None, description="Which hub of the kit; may be left out when it has one"
    )
    job: Job


class CancelJobRequest(_Request):
    """Stop a running job; it ends ``cancelled`` and its result is published as usual."""

    command: ClassVar[Command] = Command.CANCEL_JOB
    job_id: JobId
    reason: str | None = Field(default=None, max_length=500)


class StatusRequest(_Request):
    """Ask for the kit's hubs, running jobs and outbox depth."""

    command: ClassVar[Command] = Command.STATUS


class RebirthRequest(_Request):
    """Ask the kit to republish state, info, availability and retained results."""

    command: ClassVar[Command] = Command.REBIRTH


class SurveyRequest(_Request):
    """Take an RF survey with the kit's radio where it stands now; the survey follows on
    the ``survey`` topic."""

    command: ClassVar[Command] = Command.SURVEY
    position: str = Field(
        description="Where the kit stands: a device's EUI-64 (label form) or a label such as "
        "at_gas_meter; a job quotes the latest survey at its failing device's EUI-64"
    )
    hub_eui64: str | None = Field(
        default=None,
        description="The hub whose network to judge; left out: the kit asks its hub",
    )
    hub: Level | None = Field(
        default=None, description="Which hub of the kit to ask for its EUI-64 (default: first)"
    )

    @field_validator("position")
    @classmethod
    def _position(cls, value: str) -> str:
        return position_key(value)

    @field_validator("hub_eui64")
    @classmethod
    def _hub_eui(cls, value: str | None) -> str | None:
        return str(Eui64.parse(value)) if value is not None else None


Request = StartJobRequest | CancelJobRequest | StatusRequest | RebirthRequest | SurveyRequest

REQUEST_MODELS: Final[dict[Command, type[Request]]] = {
    Command.START_JOB: StartJobRequest,
    Command.CANCEL_JOB: CancelJobRequest,
    Command.STATUS: StatusRequest,
    Command.REBIRTH: RebirthRequest,
    Command.SURVEY: SurveyRequest,
}


# --- responses ------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    """Any command's refusal. ``transaction`` is null when it could not be read."""

    model_config = PUBLISHED

    schema_: Literal["gatewayd.error_response/1"] = Field(
        default="gatewayd.error_response/1", alias="schema"
    )
    transaction: str | None
    ok: Literal[False] = False
    error: ErrorDetail

    @classmethod
    def refusing(cls, request: Request, code: ErrorCode, reason: str) -> ErrorResponse:
        """A well-formed request the daemon cannot carry out (unknown hub or job, busy...)."""
        return cls(transaction=request.transaction, error=ErrorDetail.of(code, reason))


class _Ok(BaseModel):
    model_config = PUBLISHED

    schema_: str = Field(alias="schema")  # each response pins its own; declared first to lead
    transaction: str
    ok: Literal[True] = True
    error: None = None


class StartJobResponse(_Ok):
    schema_: Literal["gatewayd.start_job_response/1"] = Field(
        default="gatewayd.start_job_response/1", alias="schema"
    )
    job_id: JobId
    hub: Level
    events_topic: str
    result_topic: str


class CancelJobResponse(_Ok):
    """The job is being stopped; its ``cancelled`` result follows on its result topic."""

    schema_: Literal["gatewayd.cancel_job_response/1"] = Field(
        default="gatewayd.cancel_job_response/1", alias="schema"
    )
    job_id: JobId
    result_topic: str


class HubStatusDoc(BaseModel):
    model_config = PUBLISHED

    name: Level
    availability: Presence
    wan_state: str | None = Field(description="Last WAN state the hub reported, if any")
    job_id: JobId | None = Field(description="The job running on this hub, if any")


class RunningJobDoc(BaseModel):
    model_config = PUBLISHED

    job_id: JobId
    hub: Level
    stage: ProgressStage | None
    started_at: AwareDatetime


class OutboxDoc(BaseModel):
    model_config = PUBLISHED

    depth: int = Field(ge=0, description="Messages waiting to be published")
    oldest_created_at: AwareDatetime | None


class StatusResponse(_Ok):
    schema_: Literal["gatewayd.status_response/1"] = Field(
        default="gatewayd.status_response/1", alias="schema"
    )
    session: int = Field(ge=0)
    version: str
    hubs: list[HubStatusDoc]
    jobs: list[RunningJobDoc]
    outbox: OutboxDoc


class RebirthResponse(_Ok):
    """Sent once state, info, availability and retained results are queued again."""

    schema_: Literal["gatewayd.rebirth_response/1"] = Field(
        default="gatewayd.rebirth_response/1", alias="schema"
    )
    session: int = Field(ge=0)


class SurveyResponse(_Ok):
    """The survey has started; its document follows on ``survey_topic`` (retained)."""

    schema_: Literal["gatewayd.survey_response/1"] = Field(
        default="gatewayd.survey_response/1", alias="schema"
    )
    position: str
    survey_topic: str


Response = (
    StartJobResponse
    | CancelJobResponse
    | StatusResponse
    | RebirthResponse
    | SurveyResponse
    | ErrorResponse
)

RESPONSE_MODELS: Final[dict[Command, type[BaseModel]]] = {
    Command.START_JOB: StartJobResponse,
    Command.CANCEL_JOB: CancelJobResponse,
    Command.STATUS: StatusResponse,
    Command.REBIRTH: RebirthResponse,
    Command.SURVEY: SurveyResponse,
}


# --- parsing --------------------------------------------------------------------------


def _readable_transaction(data: dict[str, Any]) -> str | None:
    value = data.get("transaction")
    if isinstance(value, str) and 1 <= len(value) <= MAX_TRANSACTION_CHARS:
        return value
    return None


def parse_request(
    command: str, raw: bytes, max_bytes: int = MAX_REQUEST_BYTES
) -> Request | ErrorResponse:
    """The request that arrived on ``request/<command>``, or the error response to send.

    Never raises: the daemon answers every request, and one bad payload must not stop it
    answering the next.
    """
    try:
        return _parse_request(command, raw, max_bytes)
    except Exception as exc:  # a validator bug, not bad input; still answer
        _log.exception("request parsing failed command=%r", command)
        return ErrorResponse(
            transaction=None,
            error=ErrorDetail.of(
                ErrorCode.INTERNAL_ERROR, f"the kit could not check this request: {exc}"
            ),
        )


def _parse_request(command: str, raw: bytes, max_bytes: int) -> Request | ErrorResponse:
    decoded = decode_object(raw, max_bytes)
    transaction = None if isinstance(decoded, ErrorDetail) else _readable_transaction(decoded)
    try:
        known = Command(command)
    except ValueError:
        names = ", ".join(c.value for c in Command)
        return ErrorResponse(
            transaction=transaction,
            error=ErrorDetail.of(
                ErrorCode.UNKNOWN_COMMAND, f"unknown command {command!r}; known: {names}"
            ),
        )
    if isinstance(decoded, ErrorDetail):
        return ErrorResponse(transaction=None, error=decoded)
    checked = validate_payload(REQUEST_MODELS[known], decoded, f"request/{known.value}")
    if isinstance(checked, ErrorDetail):
        return ErrorResponse(transaction=transaction, error=checked)
    return checked
