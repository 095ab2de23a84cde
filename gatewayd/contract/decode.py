"""Turning received bytes into a checked document, or into the reason they cannot be one.

Publications side of the flow, inbound half: requests and DCC notices come from back offices
the kit does not control. Nothing here raises on bad input; every failure becomes an
``ErrorDetail`` whose ``reason`` names the key path at fault, in the same words as the job
file's errors (``devices[0].eui64: ...``), so a back office reads one style of message.

A number outside the range of a 64-bit float (``1e400``, which Python's json reads as
infinity) and the ``NaN``/``Infinity`` tokens Python's json accepts are refused as
``invalid_request`` at their key path: a deadline of infinity must never reach a job.
"""

from __future__ import annotations

import enum
import json
import math
import sys
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from gatewayd.config.errors import ConfigError, Loc, Problem, format_loc, validate_document

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


class _Unusable(float):
    """A number json.loads read as infinity or NaN, with the text it was written as."""

    text: str

    def __new__(cls, text: str) -> _Unusable:
        number = super().__new__(cls, text)
        number.text = text
        return number


def _float(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else _Unusable(text)


def decode_object(raw: bytes, max_bytes: int = MAX_REQUEST_BYTES) -> dict[str, Any] | ErrorDetail:
    """Parse ``raw`` as one JSON object of at most ``max_bytes`` bytes of UTF-8.

    Numbers that are not finite are kept, for ``validate_payload`` to refuse at their key.
    """
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
        data = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_float=_float, parse_constant=_Unusable
        )
    except RecursionError:
        return ErrorDetail.of(ErrorCode.INVALID_JSON, "invalid JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, a duplicate key, an over-long integer
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
    """``model.model_validate(data)``, or the reason naming every key path at fault.

    A number that is not finite is refused wherever it is, even where the model would take
    it (a float field with no upper bound).
    """
    unusable = _unusable_numbers(data)
    problems = [Problem(format_loc(loc), reason) for loc, reason in unusable]
    # The model sees null in their place, so it still names every other key at fault; what
    # it says about those keys themselves would be about the null, so only ours is kept.
    checked = _replaced(data, [loc for loc, _ in unusable]) if unusable else data
    try:
        valid = validate_document(model, checked, what)
    except ConfigError as exc:
        ours = {p.path for p in problems}
        problems += [p for p in exc.problems if not _within(p.path, ours)]
    else:
        if not problems:
            return valid
    reason = "; ".join(f"{p.path or '(top level)'}: {p.reason}" for p in problems)
    return ErrorDetail.of(ErrorCode.INVALID_REQUEST, reason)


# The largest finite 64-bit float; an integer beyond it has no float value either.
_FLOAT_MAX: Final = sys.float_info.max
# How much of a number's text a reason repeats (a payload may hold 32 KiB of digits).
_SHOWN_CHARS: Final = 24


def _unusable_numbers(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Every number in ``data`` that is not finite, or too large for a float, with why."""
    found: list[tuple[Loc, str]] = []
    # Iterative, not recursive: json.loads takes nesting deeper than Python's stack would.
    stack: list[tuple[Loc, Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*loc, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((loc, _why_unusable(value)))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _FLOAT_MAX:
            found.append((loc, _out_of_range(str(value))))
    return found


def _why_unusable(value: float) -> str:
    text = value.text if isinstance(value, _Unusable) else repr(value)
    if text in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf"):
        return f"{text} is not a JSON number: a number must be finite"
    return _out_of_range(text)


def _out_of_range(text: str) -> str:
    shown = text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"
    return (
        f"{shown} is out of range: a number must fit a 64-bit float (up to about 1.8e308 "
        "either side of zero)"
    )


def _replaced(data: dict[str, Any], locs: list[Loc]) -> dict[str, Any]:
    """A copy of ``data`` with null at each of ``locs``; ``data`` itself is left as it was."""
    root = dict(data)
    copies: dict[Loc, Any] = {(): root}
    for loc in locs:
        node: Any = root
        for depth, key in enumerate(loc[:-1], start=1):
            copy = copies.get(loc[:depth])
            if copy is None:
                inner = node[key]
                copy = dict(inner) if isinstance(inner, dict) else list(inner)
                node[key] = copies[loc[:depth]] = copy
            node = copy
        node[loc[-1]] = None
    return root


def _within(path: str, paths: set[str]) -> bool:
    """Whether the key path ``path`` is one of ``paths`` or lies inside one of them."""
    if path in paths:
        return True
    # Each shorter path that ``path`` lies inside ends where a '.' or '[' starts a level.
    return any(path[:i] in paths for i, char in enumerate(path) if char in ".[")
