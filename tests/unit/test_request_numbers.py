"""Numbers a request or DCC notice may carry: finite, and within a 64-bit float's range.

Python's json reads ``1e400`` as infinity and accepts ``NaN`` and ``Infinity``, which JSON does
not have. None of them may reach a job (an endless deadline): each is refused as
``invalid_request`` with a reason naming its key path, as docs/mqtt.md says of a bad value.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from gatewayd.config.errors import Loc, format_loc
from gatewayd.contract import (
    ErrorCode,
    ErrorDetail,
    ErrorResponse,
    StartJobRequest,
    decode_object,
    parse_dcc_notice,
    parse_request,
    to_payload,
)
from gatewayd.contract.decode import RECEIVED, validate_payload

JOB: dict[str, Any] = {
    "job_id": "JOB-2025-000123",
    "fuels": ["electricity", "gas"],
    "mpan": "1600123456785",
    "mprn": "7654321012",
    "supply": "single_phase",
    "devices": [
        {
            "eui64": "00-DB-12-34-56-78-90-A1",
            "type": "ESME",
            "install_code": "3F1A9C0E5B7D2468ACE013579BDF0246",
        },
        {
            "eui64": "00-DB-12-34-56-78-90-A2",
            "type": "GSME",
            "install_code": "8C2E4A6B0D1F3579BDF02468ACE13579",
        },
    ],
    "timing": {"wan_deadline_s": 2700, "join_attempts": 3},
}
# Stands for a number in a document; replaced by the number's text once it is JSON.
MARK = "@number@"
HUGE_INT = "1" + "0" * 400
NUMBERS = ["1e400", "-1e400", "1E+309", "NaN", "Infinity", "-Infinity", HUGE_INT]
OUT_OF_RANGE = (
    "is out of range: a number must fit a 64-bit float (up to about 1.8e308 either side of zero)"
)
NOT_JSON = "is not a JSON number: a number must be finite"


def _with_number(doc: dict[str, Any], number: str) -> bytes:
    text = json.dumps(doc)
    assert text.count(json.dumps(MARK)) == 1
    return text.replace(json.dumps(MARK), number).encode()


def _start_job(**job: Any) -> dict[str, Any]:
    return {"transaction": "t", "hub": "hub", "job": {**JOB, **job}}


def _why(number: str) -> str:
    return NOT_JSON if number in ("NaN", "Infinity", "-Infinity") else OUT_OF_RANGE


def test_a_good_start_job_still_parses() -> None:
    raw = _with_number(_start_job(timing={"wan_deadline_s": MARK}), "2700.5")
    start = parse_request("start_job", raw)
    assert isinstance(start, StartJobRequest)
    assert start.job.timing.wan_deadline_s == 2700.5


@pytest.mark.parametrize("number", NUMBERS)
@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (_start_job(timing={"wan_deadline_s": MARK}), "job.timing.wan_deadline_s"),
        (_start_job(timing={"join_attempts": MARK}), "job.timing.join_attempts"),
        (
            _start_job(devices=[JOB["devices"][0], {**JOB["devices"][1], "required": MARK}]),
            "job.devices[1].required",
        ),
        (_start_job(mpan=MARK), "job.mpan"),
        ({"transaction": "t", "hub": MARK, "job": JOB}, "hub"),
    ],
)
def test_a_start_job_with_a_number_out_of_range_is_refused_naming_its_key(
    doc: dict[str, Any], path: str, number: str
) -> None:
    answer = parse_request("start_job", _with_number(doc, number))
    assert isinstance(answer, ErrorResponse)
    assert answer.ok is False
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    # The key, what was written there, and why it cannot be used; nothing else about that key
    # (the model's own complaint would be about an infinity the back office never sent).
    shown = number if len(number) <= 24 else f"{number[:24]}... ({len(number)} chars)"
    assert answer.error.reason == f"{path}: {shown} {_why(number)}"
    assert answer.transaction == "t"
    # What the kit publishes: the documented error response, valid JSON with no infinity in it.
    payload = to_payload(answer)
    assert json.loads(payload) == {
        "schema": "gatewayd.error_response/1",
        "transaction": "t",
        "ok": False,
        "error": {"code": "invalid_request", "reason": answer.error.reason},
    }
    ErrorResponse.model_validate_json(payload)


def test_every_key_at_fault_is_named_together() -> None:
    doc = _start_job(
        timing={"wan_deadline_s": MARK, "han_deadline_s": -1},
        devices=[{**JOB["devices"][0], "eui64": "00-DB"}, JOB["devices"][1]],
    )
    answer = parse_request("start_job", _with_number(doc, "1e400"))
    assert isinstance(answer, ErrorResponse)
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    reason = answer.error.reason
    assert reason.startswith(f"job.timing.wan_deadline_s: 1e400 {OUT_OF_RANGE}")
    assert "job.devices[0].eui64: " in reason
    assert "job.timing.han_deadline_s: " in reason
    assert reason.count("job.timing.wan_deadline_s") == 1


def test_an_unreadable_transaction_is_null_in_the_answer() -> None:
    answer = parse_request("status", b'{"transaction": 1e400}')
    assert isinstance(answer, ErrorResponse)
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    assert answer.error.reason.startswith(f"transaction: 1e400 {OUT_OF_RANGE}")
    assert answer.transaction is None


@pytest.mark.parametrize("number", NUMBERS)
def test_a_dcc_notice_with_a_number_out_of_range_is_refused_naming_its_key(number: str) -> None:
    doc = {"reference": "R", "received_at": "2025-05-06T10:00:00Z", "job_ids": ["J-1", MARK]}
    answer = parse_dcc_notice(_with_number(doc, number))
    assert isinstance(answer, ErrorDetail)
    assert answer.code is ErrorCode.INVALID_REQUEST
    assert answer.reason.startswith(f"job_ids[1]: {number[:24]}")


class _Reading(BaseModel):
    """A received model with a float of no bounds, which pydantic lets be infinite."""

    model_config = RECEIVED

    level: float
    note: str | None = None


@pytest.mark.parametrize("number", NUMBERS)
def test_an_unbounded_float_is_never_carried_on_as_infinity(number: str) -> None:
    decoded = decode_object(f'{{"level": {number}}}'.encode())
    assert isinstance(decoded, dict)
    checked = validate_payload(_Reading, decoded, "test")
    assert isinstance(checked, ErrorDetail), checked
    assert checked.code is ErrorCode.INVALID_REQUEST
    assert checked.reason.startswith(f"level: {number[:24]}")


def test_validation_leaves_the_decoded_document_as_it_was() -> None:
    decoded = decode_object(b'{"level": 1e400, "note": [1, {"x": NaN}]}')
    assert isinstance(decoded, dict)
    before = repr(decoded)
    checked = validate_payload(_Reading, decoded, "test")
    assert isinstance(checked, ErrorDetail)
    assert checked.reason.startswith(f"level: 1e400 {OUT_OF_RANGE}")
    assert f"note[1].x: NaN {NOT_JSON}" in checked.reason
    assert repr(decoded) == before


def test_a_small_number_and_a_large_finite_one_are_still_numbers() -> None:
    decoded = decode_object(b'{"level": 1.7e308}')
    assert isinstance(decoded, dict)
    assert isinstance(validate_payload(_Reading, decoded, "test"), _Reading)
    decoded = decode_object(b'{"level": 1e-400}')
    assert isinstance(decoded, dict)
    reading = validate_payload(_Reading, decoded, "test")
    assert isinstance(reading, _Reading) and reading.level == 0.0


# --- as a property: any document, any place ---------------------------------------------

_KEYS = st.text(alphabet="abcxyz_.[]0", min_size=1, max_size=6)
_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="abc -", max_size=8)
)
_TREES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _documents_with_a_number(draw: st.DrawFn) -> tuple[dict[str, Any], Loc]:
    """A JSON object and the place in it where ``MARK`` stands for the number."""
    doc = copy.deepcopy(draw(st.dictionaries(_KEYS, _TREES, min_size=1, max_size=5)))
    loc: Loc = ()
    node: Any = doc
    while True:
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(min_value=0, max_value=len(node) - 1))
        else:
            break
        loc = (*loc, key)
        if not isinstance(node[key], dict | list) or draw(st.booleans()):
            node[key] = MARK
            return doc, loc
        node = node[key]
    # An empty container: the number goes in it.
    if isinstance(node, dict):
        node["n"] = MARK
        return doc, (*loc, "n")
    node.append(MARK)
    return doc, (*loc, len(node) - 1)


@given(
    _documents_with_a_number(),
    st.sampled_from(NUMBERS),
    st.sampled_from(["start_job", "cancel_job", "status", "rebirth", "survey"]),
)
def test_any_request_with_a_number_out_of_range_anywhere_is_refused_naming_it(
    found: tuple[dict[str, Any], Loc], number: str, command: str
) -> None:
    doc, loc = found
    raw = _with_number(doc, number)
    answer = parse_request(command, raw)
    assert isinstance(answer, ErrorResponse)
    assert answer.error.code is ErrorCode.INVALID_REQUEST, answer.error
    # Numbers are reported first, in document order: this is the only one.
    assert answer.error.reason.startswith(f"{format_loc(loc)}: {number[:24]}"), answer.error.reason
    assert _why(number) in answer.error.reason
    json.loads(to_payload(answer))  # what is published is JSON (no NaN or Infinity in it)
    notice = parse_dcc_notice(raw)
    assert isinstance(notice, ErrorDetail)
    assert notice.code is ErrorCode.INVALID_REQUEST
    assert notice.reason.startswith(f"{format_loc(loc)}: {number[:24]}")


@given(st.dictionaries(_KEYS, _TREES, max_size=5))
def test_a_document_of_finite_numbers_is_never_refused_for_its_numbers(
    doc: dict[str, Any],
) -> None:
    answer = parse_request("status", json.dumps(doc).encode())
    assert isinstance(answer, ErrorResponse)  # it has no transaction, or unknown keys
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    assert OUT_OF_RANGE not in answer.error.reason
    assert NOT_JSON not in answer.error.reason
