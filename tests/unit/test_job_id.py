"""The job id rule: one rule, safe as an MQTT topic level and as a file name, wherever an id enters.

A job id names the job's topics (``jobs/<job_id>/result``) and its entry in the daemon's job
journal (``<job_id>.json``): ``..`` or ``.x`` must be refused as surely as ``a/b`` or ``#``,
by MQTT requests, DCC notices, job files and the CLI alike.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.cli import main as cli_main
from gatewayd.config.errors import ConfigError
from gatewayd.config.job import JOB_ID_PATTERN, check_job_id, load_job, parse_job
from gatewayd.contract import (
    CancelJobRequest,
    DccNoticeMessage,
    ErrorCode,
    ErrorDetail,
    ErrorResponse,
    StartJobRequest,
    TopicError,
    Topics,
    parse_dcc_notice,
    parse_request,
    validate_job_id,
    validate_level,
)
from gatewayd.contract.schema_export import DEFAULT_DOCS_DIR
from tests.unit.test_contract import JOB

ROOT = Path(__file__).resolve().parents[2]
T = Topics("kit-7")
_AT = "2025-05-06T10:00:00Z"

GOOD = ["J-1", "JOB-2026-0001", "JOB-2025-000123", "a", "7", "J.", "A.b_c-d", "x" * 64]
BAD: list[object] = [
    "",
    ".",
    "..",
    "...",
    ".hidden",
    "-rf",
    "_x",
    "a/b",
    "../x",
    "+",
    "#",
    "a+",
    "x#",
    "a\x00b",
    "a\x1fb",
    "a\x7fb",
    "J-1\n",
    "a b",
    " J",
    "$SYS",
    "é",
    "x" * 65,
    7,
    None,
]


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _start(job_id: object) -> bytes:
    return _raw({"transaction": "t", "job": {**JOB, "job_id": job_id}})


@pytest.mark.parametrize("good", GOOD)
def test_usable_job_ids_are_accepted_everywhere(good: str) -> None:
    assert check_job_id(good) == good
    assert validate_job_id(good) == good
    assert parse_job({**JOB, "job_id": good}).job_id == good
    start = parse_request("start_job", _start(good))
    assert isinstance(start, StartJobRequest) and start.job.job_id == good
    cancel = parse_request("cancel_job", _raw({"transaction": "t", "job_id": good}))
    assert isinstance(cancel, CancelJobRequest) and cancel.job_id == good
    notice = parse_dcc_notice(_raw({"reference": "R", "received_at": _AT, "job_ids": [good]}))
    assert isinstance(notice, DccNoticeMessage) and notice.job_ids == [good]
    assert T.job_result(good) == f"gatewayd/kit-7/jobs/{good}/result"


@pytest.mark.parametrize("bad", BAD)
def test_unsafe_job_ids_are_refused_by_the_one_rule(bad: object) -> None:
    with pytest.raises(ValueError, match="job id"):
        check_job_id(bad)
    with pytest.raises(TopicError, match="job_id"):
        validate_job_id(bad)
    if isinstance(bad, str):
        with pytest.raises(TopicError, match="job_id"):
            T.job_result(bad)
        with pytest.raises(TopicError, match="job_id"):
            T.job_events(bad)


@pytest.mark.parametrize("bad", BAD)
def test_a_start_job_with_an_unsafe_job_id_is_an_invalid_request_naming_the_key(
    bad: object,
) -> None:
    answer = parse_request("start_job", _start(bad))
    assert isinstance(answer, ErrorResponse)
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    assert answer.error.reason.startswith("job.job_id: "), answer.error.reason
    assert answer.transaction == "t"


@pytest.mark.parametrize("bad", BAD)
def test_a_cancel_job_with_an_unsafe_job_id_is_an_invalid_request_naming_the_key(
    bad: object,
) -> None:
    answer = parse_request("cancel_job", _raw({"transaction": "t", "job_id": bad}))
    assert isinstance(answer, ErrorResponse)
    assert answer.error.code is ErrorCode.INVALID_REQUEST
    assert answer.error.reason.startswith("job_id: "), answer.error.reason
    assert answer.transaction == "t"


@pytest.mark.parametrize("bad", BAD)
def test_a_dcc_notice_naming_an_unsafe_job_id_is_refused_naming_it(bad: object) -> None:
    raw = _raw({"reference": "R", "received_at": _AT, "job_ids": ["J-1", bad]})
    answer = parse_dcc_notice(raw)
    assert isinstance(answer, ErrorDetail)
    assert answer.code is ErrorCode.INVALID_REQUEST
    assert answer.reason.startswith("job_ids[1]: "), answer.reason


def test_the_reason_says_what_a_job_id_may_be() -> None:
    answer = parse_request("start_job", _start(".."))
    assert isinstance(answer, ErrorResponse)
    assert answer.error.reason == (
        "job.job_id: '..' is not a usable job id: it must be 1 to 64 characters from A-Z, a-z, "
        "0-9, '.', '_' and '-', starting with a letter or a digit (it becomes an MQTT topic "
        "level and a file name)"
    )


def test_a_long_job_id_is_not_repeated_in_full() -> None:
    answer = parse_request("start_job", _start("J" * 5000))
    assert isinstance(answer, ErrorResponse)
    assert "(5000 characters)" in answer.error.reason
    assert "J" * 100 not in answer.error.reason


@pytest.mark.parametrize("bad", ["..", ".x", "-x", "a/b"])
def test_a_job_file_with_an_unsafe_job_id_names_the_file_and_the_key(
    tmp_path: Path, bad: str
) -> None:
    path = tmp_path / "job.toml"
    doc = {**JOB, "job_id": bad}
    path.write_text(_toml(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_job(path)
    assert [p.path for p in info.value.problems] == ["job_id"]
    assert str(info.value).startswith(f"{path}: job_id: {bad!r} is not a usable job id")


def test_check_config_refuses_a_job_file_with_job_id_dot_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.toml"
    path.write_text(_toml({**JOB, "job_id": ".."}), encoding="utf-8")
    assert cli_main.main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: job_id: '..' is not a usable job id" in err
    assert "Traceback" not in err


def test_probe_refuses_a_job_file_with_job_id_dot_dot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.toml"
    path.write_text(_toml({**JOB, "job_id": ".."}), encoding="utf-8")
    # The example kit, on a port that is not there: no hub is reached whatever happens.
    kit = tmp_path / "kit.toml"
    example = (ROOT / "examples" / "kit-sim.toml").read_text(encoding="utf-8")
    kit.write_text(
        example.replace("/tmp/gatewayd-hub", str(tmp_path / "no-hub")).replace(
            "/tmp/gatewayd-state", str(tmp_path / "state")
        ),
        encoding="utf-8",
    )
    assert str(tmp_path / "no-hub") in kit.read_text(encoding="utf-8")
    assert cli_main.main(["probe", "--config", str(kit), "--job", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: job_id: '..' is not a usable job id" in err
    assert "Traceback" not in err


def _toml(doc: dict[str, Any]) -> str:
    """Just enough TOML for a job document: strings, lists of strings, tables in a list."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in doc.items():
        if key == "devices":
            for device in value:
                tables.append("\n[[devices]]")
                tables.extend(f"{k} = {json.dumps(v)}" for k, v in device.items())
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables) + "\n"


# --- the rule, as a property -----------------------------------------------------------

_SAFE = set(string.ascii_letters + string.digits + "._-")
_ALPHABET = string.ascii_letters[:6] + string.digits[:3] + "._-/+#\x00\x01\x7f \n$é"


def _is_plain_file_name(name: str) -> bool:
    """What a file name inside the job journal's directory must be."""
    path = PurePosixPath("/journal") / f"{name}.json"
    return (
        name not in ("", ".", "..")
        and path.parent == PurePosixPath("/journal")
        and not name.startswith((".", "-"))
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    )


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_an_accepted_job_id_is_a_safe_topic_level_and_a_plain_file_name(value: str) -> None:
    try:
        check_job_id(value)
    except ValueError:
        accepted = False
    else:
        accepted = True
    expected = (
        1 <= len(value) <= 64 and set(value) <= _SAFE and value[0].isascii() and value[0].isalnum()
    )
    assert accepted == expected
    if accepted:
        assert validate_level(value, "job_id") == value
        assert _is_plain_file_name(value)
        topic = T.job_result(value)
        assert topic.split("/") == ["gatewayd", "kit-7", "jobs", value, "result"]


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_every_way_in_agrees_with_the_rule(value: str) -> None:
    try:
        check_job_id(value)
    except ValueError:
        accepted = False
    else:
        accepted = True
    start = parse_request("start_job", _start(value))
    cancel = parse_request("cancel_job", _raw({"transaction": "t", "job_id": value}))
    assert isinstance(start, StartJobRequest) == accepted
    assert isinstance(cancel, CancelJobRequest) == accepted
    if not accepted:
        assert isinstance(start, ErrorResponse) and isinstance(cancel, ErrorResponse)
        assert start.error.code is cancel.error.code is ErrorCode.INVALID_REQUEST
        assert start.error.reason.startswith("job.job_id: ")
        assert cancel.error.reason.startswith("job_id: ")


# --- the published contract states the same rule -------------------------------------


def test_the_schemas_state_the_job_id_rule() -> None:
    pattern = f"^{JOB_ID_PATTERN}$"
    start = json.loads((DEFAULT_DOCS_DIR / "schemas" / "start_job_request.json").read_text())
    assert start["$defs"]["Job"]["properties"]["job_id"]["pattern"] == pattern
    cancel = json.loads((DEFAULT_DOCS_DIR / "schemas" / "cancel_job_request.json").read_text())
    assert cancel["properties"]["job_id"]["pattern"] == pattern
    asyncapi = (DEFAULT_DOCS_DIR / "asyncapi.yaml").read_text()
    job_id_parameter = asyncapi.split("\n    job_id:\n", 1)[1].split("\n    command:\n", 1)[0]
    assert f'pattern: "{pattern}"' in job_id_parameter


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_the_schema_pattern_accepts_what_the_kit_accepts(value: str) -> None:
    try:
        check_job_id(value)
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert (re.fullmatch(JOB_ID_PATTERN, value) is not None) == accepted
