"""Turning received bytes into a checked document, or into the reason they cannot be one.

Publications side of the flow, inbound half: requests and DCC notices come from back offices
the kit does not control. Nothing here raises on bad input; every failure becomes an
``ErrorDetail`` whose ``reason`` names the key path at fault, in the same words as the job
file's errors (``devices[0].eui64: ...``), so a back office reads one style of message.
"""

from __future__ import annotations

import enum
import json
from typing import Any, Final, NoReturn, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gatewayd.config.errors import ConfigError, validate_document

from .messages import PUBLISHED

__all__ = [
    "MAX_REASON_CHARS",
    "MAX_REQUEST_BYTES",
    "RECEIVED",
    "ErrorCode",
    "ErrorDetail",
    "decode_object",
    "validate_payload",
]

# A job with the hub's 16 devices is about 3 KiB of JSON, pretty-printed; a DCC notice naming
# 100 sites about 2 KiB. 32 KiB leaves room for generous formatting while keeping a bad or
# hostile payload from costing the kit memory and time (json.loads is not streaming).
MAX_REQUEST_BYTES: Final = 32 * 1024

# A reason lists every problem (as the job file's errors do) but stays one readable message.
MAX_REASON_CHARS: Final = 2000

# What the kit receives: unknown keys are errors (a misspelt key would be silently ignored).
RECEIVED: Final = ConfigDict(extra="forbid", frozen=True)

M = TypeVar("M", bound=BaseModel)


class ErrorCode(enum.StrEnum):
    """Why a request was refused, for programs; ``reason`` says it for people."""

    TOO_LARGE = "too_large"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    INVALID_REQUEST = "invalid_request"  # missing or wrong keys; the reason names them
    UNKNOWN_COMMAND = "unknown_command"
    UNKNOWN_HUB = "unknown_hub"
    UNKNOWN_JOB = "unknown_job"
    HUB_BUSY = "hub_busy"  # a job already runs on that hub
    JOB_EXISTS = "job_exists"  # that job_id already ran or runs on this kit
    NO_RADIO = "no_radio"  # a survey asked of a kit without a [radio]
    RADIO_BUSY = "radio_busy"  # a survey already runs on the kit's radio
    STORAGE_ERROR = "storage_error"  # the kit's disk refused to record the job; try again
    INTERNAL_ERROR = "internal_error"


class ErrorDetail(BaseModel):
    model_config = PUBLISHED

    code: ErrorCode
    reason: str = Field(min_length=1, description="For people: what is wrong and where")

    @classmethod
    def of(cls, code: ErrorCode, reason: str) -> ErrorDetail:
        if len(reason) > MAX_REASON_CHARS:
            suffix = " ... (truncated)"
            reason = reason[: MAX_REASON_CHARS - len(suffix)] + suffix
        return cls(code=code, reason=reason)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice is ambiguous (json.loads would silently keep the last one).
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def decode_object(raw: bytes, max_bytes: int = MAX_REQUEST_BYTES) -> dict[str, Any] | ErrorDetail:
    """Parse ``raw`` as one JSON object of at most ``max_bytes`` bytes of UTF-8."""
    if len(raw) > max_bytes:
        # Not parsed at all: parsing is the cost the limit is there to avoid.
        return ErrorDetail.of(
            ErrorCode.TOO_LARGE, f"payload is {len(raw)} bytes; the limit is {max_bytes}"
        )
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return ErrorDetail.of(
            ErrorCode.INVALID_JSON, f"payload is not UTF-8 text (bad byte at offset {exc.start})"
        )
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except RecursionError:
        return ErrorDetail.of(ErrorCode.INVALID_JSON, "invalid JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, a duplicate key, NaN, an over-long integer
        return ErrorDetail.of(ErrorCode.INVALID_JSON, f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        return ErrorDetail.of(
            ErrorCode.NOT_AN_OBJECT,
            f"payload must be a JSON object ({{...}}), got {_json_type(data)}",
        )
    return data


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def validate_payload(model: type[M], data: dict[str, Any], what: str) -> M | ErrorDetail:
    """``model.model_validate(data)``, or the reason naming every key path at fault."""
    try:
        return validate_document(model, data, what)
    except ConfigError as exc:
        reason = "; ".join(f"{p.path or '(top level)'}: {p.reason}" for p in exc.problems)
        return ErrorDetail.of(ErrorCode.INVALID_REQUEST, reason)
