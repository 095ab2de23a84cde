"""The MQTT contract as data: topics, payload models, request parsing, converters, docs drift."""

from __future__ import annotations

import ast
import importlib
import json
import math
import re
import shutil
import string
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from gatewayd.config.survey import SurveyConfig
from gatewayd.contract import (
    CHANNELS,
    PAYLOADS,
    AbortNotice,
    Availability,
    CancelJobRequest,
    CancelJobResponse,
    Command,
    DccNoticeMessage,
    Direction,
    ErrorCode,
    ErrorDetail,
    ErrorResponse,
    HubEventBody,
    HubEventMessage,
    HubPortDoc,
    HubStatusDoc,
    Info,
    JobEventMessage,
    NoticeTopic,
    OutboxDoc,
    Presence,
    RebirthRequest,
    RebirthResponse,
    Region,
    RequestTopic,
    RunningJobDoc,
    StampFields,
    StartJobRequest,
    StartJobResponse,
    State,
    StatusRequest,
    StatusResponse,
    SurveyMessage,
    SurveyRequest,
    SurveyResponse,
    TopicError,
    Topics,
    abort_notice,
    channel,
    config_digest,
    hub_event_body,
    hub_event_message,
    job_event_message,
    parse_dcc_notice,
    parse_request,
    replayed,
    state_payload,
    to_payload,
    validate_level,
    validate_prefix,
)
from gatewayd.contract.schema_export import (
    DEFAULT_DOCS_DIR,
    asyncapi_document,
    check,
    expected_files,
    main,
    render_yaml,
    schema_document,
    write,
)
from gatewayd.engine.progress import Kind, Progress, Stage
from gatewayd.engine.result import ResultDocument
from gatewayd.engine.verdict import Outcome
from gatewayd.survey.judgement import SurveyDocument, judge
from gatewayd_drivers.commshub.client import HubSilent, LinkLost, LinkUp
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    ConnectedToEsme,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLogChanged,
    DisconnectedFromEsme,
    HanState,
    HanStateChanged,
    HanStatus,
    HubStarted,
    JoinFailReason,
    RegState,
    StartReason,
    ThreeLostGsmeSearchesFailed,
    UnknownEvent,
    WanState,
    WanStateChanged,
    WanStatus,
)
from gatewayd_drivers.commshub.silence import Silence
from gatewayd_drivers.znp.commands import Beacon

TS = datetime(2025, 5, 6, 9, 0, tzinfo=UTC)
EUI = Eui64.parse("00-DB-12-34-56-78-90-A1")
STAMP = StampFields(session=3, seq=7, ts=TS, event_id="5f0c6a57-0000-4000-8000-000000000001")
JOB: dict[str, Any] = {
    "job_id": "JOB-2025-000123",
    "fuels": ["electricity"],
    "mpan": "1600123456785",
    "supply": "single_phase",
    "devices": [
        {
            "eui64": "00-DB-12-34-56-78-90-A1",
            "type": "ESME",
            "install_code": "3F1A9C0E5B7D2468ACE013579BDF0246",
        }
    ],
}
T = Topics("kit-7")
# Payloads past their first version (every other is at 1); info/2 dropped the hubs' ports.
VERSIONS = {"info": 2}


# --- topics ---------------------------------------------------------------------------


def test_every_topic_of_a_kit() -> None:
    assert T.state == "gatewayd/kit-7/state"
    assert T.info == "gatewayd/kit-7/info"
    assert T.hub_availability("hub") == "gatewayd/kit-7/hubs/hub/availability"
    assert T.hub_events("hub") == "gatewayd/kit-7/hubs/hub/events"
    assert T.job_events("J-1") == "gatewayd/kit-7/jobs/J-1/events"
    assert T.job_result("J-1") == "gatewayd/kit-7/jobs/J-1/result"
    assert T.aborts == "gatewayd/kit-7/aborts"
    assert T.request("status") == "gatewayd/kit-7/request/status"
    assert T.response("status") == "gatewayd/kit-7/response/status"
    assert T.dcc_notice == "gatewayd/kit-7/dcc/notice"
    assert T.region_dcc_notice(Region.NORTH) == "gatewayd/region/north/dcc/notice"
    custom = Topics("k", prefix="acme/gw")
    assert custom.state == "acme/gw/k/state"
    assert custom.region_dcc_notice("south") == "acme/gw/region/south/dcc/notice"


def test_subscriptions() -> None:
    assert T.request_filter == "gatewayd/kit-7/request/+"
    assert T.dcc_notice_filters() == (
        "gatewayd/kit-7/dcc/notice",
        "gatewayd/region/+/dcc/notice",
    )
    assert T.dcc_notice_filters(["south", Region.NORTH, "south"]) == (
        "gatewayd/kit-7/dcc/notice",
        "gatewayd/region/north/dcc/notice",
        "gatewayd/region/south/dcc/notice",
    )
    assert T.subscriptions([Region.CENTRAL]) == (
        "gatewayd/kit-7/request/+",
        "gatewayd/kit-7/dcc/notice",
        "gatewayd/region/central/dcc/notice",
    )
    with pytest.raises(ValueError):
        T.dcc_notice_filters(["midlands"])


def test_match_incoming_topics() -> None:
    assert T.match("gatewayd/kit-7/request/start_job") == RequestTopic("start_job")
    assert T.match("gatewayd/kit-7/request/bogus") == RequestTopic("bogus")
    assert T.match("gatewayd/kit-7/request/a/b") is None
    assert T.match("gatewayd/kit-7/request/") is None
    assert T.match("gatewayd/kit-7/dcc/notice") == NoticeTopic(None)
    assert T.match("gatewayd/region/central/dcc/notice") == NoticeTopic(Region.CENTRAL)
    assert T.match("gatewayd/region/midlands/dcc/notice") is None
    assert T.match("gatewayd/kit-8/request/status") is None
    assert T.match("gatewayd/kit-7/state") is None


@pytest.mark.parametrize(
    "bad", ["", "a/b", "+", "#", "a+", "x#", "a\x00b", "job\n", " job", "$SYS", "é", "x" * 65, 7]
)
def test_unsafe_levels_are_refused(bad: object) -> None:
    with pytest.raises(TopicError, match="job_id"):
        validate_level(bad, "job_id")
    if isinstance(bad, str):
        with pytest.raises(TopicError):
            Topics(bad)
        with pytest.raises(TopicError):
            T.job_result(bad)
        with pytest.raises(TopicError):
            T.hub_events(bad)


@pytest.mark.parametrize("bad", ["", "/gw", "gw/", "a//b", "a/+", "#", "gw\n"])
def test_bad_prefixes_are_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="prefix"):
        validate_prefix(bad)


@pytest.mark.parametrize("reserved", ["region", "fleet"])
def test_fleet_levels_cannot_be_kit_ids(reserved: str) -> None:
    with pytest.raises(TopicError, match="reserved"):
        Topics(reserved)


_ALPHABET = string.ascii_letters + string.digits + "._-/+#\x00 \n$é"


@given(st.text(alphabet=_ALPHABET, max_size=70))
def test_an_accepted_level_is_one_safe_topic_level(value: str) -> None:
    try:
        validate_level(value, "level")
    except TopicError:
        accepted = False
    else:
        accepted = True
    safe_chars = set(string.ascii_letters + string.digits + "._-")
    assert accepted == (1 <= len(value) <= 64 and set(value) <= safe_chars)
    if accepted:
        assert not set(value) & set("/+#\x00")


@given(
    st.text(alphabet=_ALPHABET, min_size=1, max_size=20),
    st.text(alphabet=_ALPHABET, min_size=1, max_size=20),
)
def test_topics_from_accepted_names_have_the_expected_levels(kit_id: str, job_id: str) -> None:
    try:
        topics = Topics(kit_id)
        topic = topics.job_result(job_id)
    except TopicError:
        return
    assert topic.split("/") == ["gatewayd", kit_id, "jobs", job_id, "result"]
    assert topics.match(topics.request(job_id)) == RequestTopic(job_id)


_TOPIC_OF: dict[str, Callable[[Topics], str]] = {
    "state": lambda t: t.state,
    "info": lambda t: t.info,
    "hub_availability": lambda t: t.hub_availability("h1"),
    "hub_events": lambda t: t.hub_events("h1"),
    "job_events": lambda t: t.job_events("J-1"),
    "job_result": lambda t: t.job_result("J-1"),
    "aborts": lambda t: t.aborts,
    "request": lambda t: t.request("status"),
    "response": lambda t: t.response("status"),
    "request_errors": lambda t: t.request_errors,
    "dcc_notice": lambda t: t.dcc_notice,
    "region_dcc_notice": lambda t: t.region_dcc_notice(Region.SOUTH),
    "survey": lambda t: t.survey,
}


def test_topics_follow_the_channel_table() -> None:
    assert sorted(_TOPIC_OF) == sorted(c.key for c in CHANNELS)
    values = {"kit_id": "k", "hub": "h1", "job_id": "J-1", "command": "status", "region": "south"}
    topics = Topics("k", prefix="p/q")
    for ch in CHANNELS:
        assert _TOPIC_OF[ch.key](topics) == "p/q/" + ch.address.format(**values), ch.key


def test_channel_flags() -> None:
    retained = {c.key for c in CHANNELS if c.retain}
    assert retained == {"state", "info", "hub_availability", "job_result", "survey"}
    assert all(c.qos == 1 for c in CHANNELS)
    received = {c.key for c in CHANNELS if c.direction is Direction.RECEIVED}
    assert received == {"request", "dcc_notice", "region_dcc_notice"}
    assert channel("job_result").payloads[0].model is ResultDocument


# --- models ---------------------------------------------------------------------------


def _result(outcome: Outcome = Outcome.ABORTED) -> ResultDocument:
    aborted = outcome is Outcome.ABORTED
    return ResultDocument.model_validate(
        {
            "job_id": "JOB-2025-000123",
            "policy": "abort_on_no_wan",
            "outcome": outcome.value,
            "stage": "wan" if aborted else None,
            "abort": (
                {
                    "code": "UNABLE_TO_ESTABLISH_WAN",
                    "title": "Unable to Establish WAN - Meter Not Installed",
                    "evidence": {"final_state": "searching"},
                }
                if aborted
                else None
            ),
            "next_actions": (
                [{"action": "monitor_wan_and_reinstruct", "text": "Watch the coverage."}]
                if aborted
                else []
            ),
            "meter_type": {
                "applicable": True,
                "available": True,
                "supply": "single_phase",
                "source": "job",
                "ct": False,
                "needed_variant": "single_phase",
                "van_variants": ["single_phase"],
                "job_supply": "single_phase",
                "mismatch": False,
            },
            "wan": None,
            "han": {"probed": False, "devices": []},
            "hub": None,
            "dcc_notice": None,
            "cancellation": None,
            "failure": None,
            "started_at": TS.isoformat(),
            "finished_at": (TS + timedelta(minutes=30)).isoformat(),
            "gatewayd_version": "0.1.0",
        }
    )


def _abort() -> AbortNotice:
    notice = abort_notice(_result(), hub="hub", topics=T, stamp=STAMP)
    assert notice is not None
    return notice


def _samples() -> dict[type[BaseModel], BaseModel]:
    progress = Progress("JOB-1", Stage.WAN, Kind.ATTEMPT, "Poll 2", 12.5, attempt=2)
    return {
        State: State(state=Presence.ONLINE, session=3),
        Info: Info(
            kit_id="kit-7",
            session=3,
            ts=TS,
            version="0.1.0",
            config_digest=config_digest(b"[hub]\nport = '/dev/ttyUSB0'\n"),
            hubs=[HubPortDoc(name="hub", baudrate=115200)],
            requests=list(Command),
            capabilities=["rf_survey"],
            max_request_bytes=32768,
            dcc_notice_topics=list(T.dcc_notice_filters()),
        ),
        Availability: Availability(
            hub="hub", state=Presence.OFFLINE, session=3, ts=TS, reason="port vanished"
        ),
        HubEventMessage: hub_event_message(
            WanStateChanged(WanStatus(WanState.CONNECTED, RegState.REGISTERED_HOME, -71, 5, 3, 1)),
            hub="hub",
            job_id="JOB-1",
            stamp=STAMP,
        ),
        JobEventMessage: job_event_message(progress, hub="hub", stamp=STAMP),
        ResultDocument: _result(),
        AbortNotice: _abort(),
        StartJobRequest: StartJobRequest.model_validate({"transaction": "t1", "job": JOB}),
        CancelJobRequest: CancelJobRequest(transaction="t2", job_id="JOB-1", reason="rebooked"),
        StatusRequest: StatusRequest(transaction="t3"),
        RebirthRequest: RebirthRequest(transaction="t4"),
        StartJobResponse: StartJobResponse(
            transaction="t1",
            job_id="JOB-1",
            hub="hub",
            events_topic=T.job_events("JOB-1"),
            result_topic=T.job_result("JOB-1"),
        ),
        CancelJobResponse: CancelJobResponse(
            transaction="t2", job_id="JOB-1", result_topic=T.job_result("JOB-1")
        ),
        StatusResponse: StatusResponse(
            transaction="t3",
            session=3,
            version="0.1.0",
            hubs=[
                HubStatusDoc(
                    name="hub", availability=Presence.ONLINE, wan_state="connected", job_id="J"
                )
            ],
            jobs=[RunningJobDoc(job_id="J", hub="hub", stage=Stage.HAN, started_at=TS)],
            outbox=OutboxDoc(depth=2, oldest_created_at=TS),
        ),
        RebirthResponse: RebirthResponse(transaction="t4", session=3),
        ErrorResponse: ErrorResponse(
            transaction=None, error=ErrorDetail.of(ErrorCode.INVALID_JSON, "invalid JSON")
        ),
        DccNoticeMessage: DccNoticeMessage(
            reference="INC-42", received_at=TS, mpans=["1600123456785"]
        ),
        SurveyRequest: SurveyRequest(transaction="t5", position="00-DB-12-34-56-78-90-A2"),
        SurveyResponse: SurveyResponse(
            transaction="t5", position="00-DB-12-34-56-78-90-A2", survey_topic=T.survey
        ),
        SurveyMessage: SurveyMessage(
            transaction="t5",
            position="00-DB-12-34-56-78-90-A2",
            ok=True,
            survey=_survey(),
            error=None,
            **STAMP.fields(),
        ),
    }


def _survey() -> SurveyDocument:
    hub = Eui64.parse("00-DB-12-34-56-78-90-A0")
    beacon = Beacon(0, 0x1A2B, 15, False, 1, 1, 2, 2, 48, 0, 0, hub)
    return judge(
        [[beacon], [beacon]],
        {ch: 8 for ch in range(11, 27)},
        hub,
        SurveyConfig(),
        taken_at=TS,
        position="00-DB-12-34-56-78-90-A2",
        radio="Z-Stack build 20230507 (MT 2.7.1, product 1)",
    )


def test_every_payload_has_a_sample() -> None:
    assert set(_samples()) == {p.model for p in PAYLOADS}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_each_model_round_trips_json(payload: Any) -> None:
    sample = _samples()[payload.model]
    raw = to_payload(sample)
    assert payload.model.model_validate_json(raw) == sample
    assert payload.model.model_validate(json.loads(raw)) == sample


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_samples_have_the_keys_their_schema_lists(payload: Any) -> None:
    sample = json.loads(to_payload(_samples()[payload.model]))
    schema = schema_document(payload)
    assert set(schema["required"]) <= set(sample) <= set(schema["properties"])
    if payload.mode == "serialization":
        # Published payloads carry every key, so a reader may rely on each one being there.
        assert set(schema["required"]) == set(schema["properties"]) == set(sample)
        if "schema" in sample:
            assert sample["schema"] == f"gatewayd.{payload.name}/{VERSIONS.get(payload.name, 1)}"


def test_received_models_refuse_unknown_keys_and_are_frozen() -> None:
    with pytest.raises(ValidationError, match="extra"):
        StatusRequest.model_validate({"transaction": "t", "colour": "red"})
    request = StatusRequest(transaction="t")
    with pytest.raises(ValidationError):
        request.transaction = "u"


def test_state_payload_fits_the_link() -> None:
    assert json.loads(state_payload("offline", 9)) == {
        "schema": "gatewayd.state/1",
        "state": "offline",
        "session": 9,
    }
    with pytest.raises(ValueError):
        state_payload("sleeping", 9)


def test_replayed_keeps_the_event_id() -> None:
    event = hub_event_message(LinkUp(reopened=True), hub="hub", job_id=None, stamp=STAMP)
    again = replayed(event)
    assert (again.event_id, again.seq, again.replayed) == (event.event_id, 7, True)
    assert event.replayed is False
    assert StampFields(session=1, seq=1, ts=TS).event_id != StampFields(1, 1, TS).event_id


def test_envelope_refuses_naive_times_and_seq_zero() -> None:
    good = json.loads(to_payload(_samples()[JobEventMessage]))
    JobEventMessage.model_validate(good)
    with pytest.raises(ValidationError, match="ts"):
        JobEventMessage.model_validate({**good, "ts": "2025-05-06T09:00:00"})
    with pytest.raises(ValidationError, match="seq"):
        JobEventMessage.model_validate({**good, "seq": 0})


def test_response_shapes() -> None:
    with pytest.raises(ValidationError):
        StartJobResponse.model_validate(
            {**json.loads(to_payload(_samples()[StartJobResponse])), "ok": False}
        )
    refused = ErrorResponse.refusing(
        StatusRequest(transaction="t9"), ErrorCode.UNKNOWN_HUB, "no hub 'x'"
    )
    assert json.loads(to_payload(refused)) == {
        "schema": "gatewayd.error_response/1",
        "transaction": "t9",
        "ok": False,
        "error": {"code": "unknown_hub", "reason": "no hub 'x'"},
    }
    assert len(ErrorDetail.of(ErrorCode.INVALID_REQUEST, "x" * 10_000).reason) <= 2000


# --- parse_request ----------------------------------------------------------------------


def _raw(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _t(**keys: object) -> bytes:
    """A request with transaction "t" and ``keys``."""
    return _raw({"transaction": "t", **keys})


def _device(**keys: object) -> dict[str, Any]:
    return {**JOB, "devices": [{**JOB["devices"][0], **keys}]}


JSON, OBJ, REQ = ErrorCode.INVALID_JSON, ErrorCode.NOT_AN_OBJECT, ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("command", "raw", "code", "where", "transaction"),
    [
        ("status", b"{not json", JSON, "invalid JSON", None),
        ("status", b"\xff\xfe{}", JSON, "UTF-8", None),
        ("status", b'{"transaction": "t", "transaction": "u"}', JSON, "twice", None),
        ("status", b'{"transaction": "t", "x": NaN}', REQ, "x: NaN is not a JSON number", "t"),
        ("status", b"[" * 5000 + b"]" * 5000, JSON, "deeply", None),
        ("status", b"[]", OBJ, "array", None),
        ("status", b'"status"', OBJ, "string", None),
        ("status", b"null", OBJ, "null", None),
        ("status", b"{}", REQ, "transaction: required key is missing", None),
        ("status", _raw({"transaction": 7}), REQ, "transaction:", None),
        ("status", _raw({"transaction": ""}), REQ, "transaction:", None),
        ("status", _t(x=1), REQ, "x: unknown key", "t"),
        ("start_job", _t(), REQ, "job: required", "t"),
        ("start_job", _t(job=[]), REQ, "job:", "t"),
        ("start_job", _t(job={**JOB, "mpan": "1600123456780"}), REQ, "job.mpan:", "t"),
        ("start_job", _t(job=_device(eui64="x")), REQ, "job.devices[0].eui64:", "t"),
        ("start_job", _t(job={**JOB, "job_id": "JOB-1\n"}), REQ, "job.job_id:", "t"),
        ("start_job", _t(hub="a/b", job=JOB), REQ, "hub:", "t"),
        ("cancel_job", _t(job_id="#"), REQ, "job_id:", "t"),
        ("cancel_job", _t(), REQ, "job_id: required", "t"),
        ("status", b" " * 40_000, ErrorCode.TOO_LARGE, "40000 bytes", None),
        ("reboot", _t(), ErrorCode.UNKNOWN_COMMAND, "'reboot'", "t"),
        ("reboot", b"{oops", ErrorCode.UNKNOWN_COMMAND, "'reboot'", None),
    ],
)
def test_bad_requests_get_an_error_naming_the_field(
    command: str, raw: bytes, code: ErrorCode, where: str, transaction: str | None
) -> None:
    answer = parse_request(command, raw)
    assert isinstance(answer, ErrorResponse)
    assert answer.ok is False
    assert answer.error.code is code
    assert where in answer.error.reason
    assert answer.transaction == transaction
    ErrorResponse.model_validate_json(to_payload(answer))


def test_install_codes_are_not_echoed_in_reasons() -> None:
    code = "00" * 16
    answer = parse_request("start_job", _t(job=_device(install_code=code)))
    assert isinstance(answer, ErrorResponse)
    assert "job.devices[0].install_code" in answer.error.reason
    assert code not in answer.error.reason


def test_the_size_limit_is_a_parameter() -> None:
    raw = _raw({"transaction": "t"})
    assert isinstance(parse_request("status", raw, max_bytes=len(raw)), StatusRequest)
    answer = parse_request("status", raw, max_bytes=len(raw) - 1)
    assert isinstance(answer, ErrorResponse) and answer.error.code is ErrorCode.TOO_LARGE


def test_good_requests() -> None:
    start = parse_request("start_job", _raw({"transaction": "t1", "job": JOB}))
    assert isinstance(start, StartJobRequest)
    assert (start.hub, start.job.job_id, start.job.devices[0].required) == (
        None,
        "JOB-2025-000123",
        True,
    )
    on_hub = parse_request("start_job", _raw({"transaction": "t1", "hub": "east", "job": JOB}))
    assert isinstance(on_hub, StartJobRequest) and on_hub.hub == "east"
    cancel = parse_request("cancel_job", _raw({"transaction": "t2", "job_id": "JOB-1"}))
    assert isinstance(cancel, CancelJobRequest) and cancel.reason is None
    assert isinstance(parse_request("status", _raw({"transaction": "t3"})), StatusRequest)
    assert isinstance(parse_request("rebirth", _raw({"transaction": "t4"})), RebirthRequest)


@given(st.binary(max_size=200))
def test_parse_request_never_raises(raw: bytes) -> None:
    for command in ("start_job", "status", "bogus"):
        answer = parse_request(command, raw)
        assert isinstance(answer, BaseModel)
        # Bad input is answered as such, never through the catch-all for the kit's own bugs.
        assert not (
            isinstance(answer, ErrorResponse) and answer.error.code is ErrorCode.INTERNAL_ERROR
        )


# --- DCC notices ------------------------------------------------------------------------


def test_dcc_notice() -> None:
    notice = parse_dcc_notice(
        _raw(
            {
                "reference": "INC-42",
                "received_at": "2025-05-06T10:00:00+01:00",
                "not_before": "2025-05-09T08:00:00Z",
                "job_ids": ["JOB-1"],
                "mpans": ["1600 1234 5678 5"],
            }
        )
    )
    assert isinstance(notice, DccNoticeMessage)
    assert notice.mpans == ["1600123456785"]
    assert notice.concerns("JOB-1")
    assert notice.concerns("JOB-2", mpan="1600123456785")
    assert not notice.concerns("JOB-2", mpan="1600000000000", mprn="123456")
    outcome = notice.to_notice()
    assert (outcome.reference, outcome.not_before) == (
        "INC-42",
        datetime(2025, 5, 9, 8, tzinfo=UTC),
    )


def _n(**keys: object) -> dict[str, object]:
    return {"reference": "R", "received_at": "2025-05-06T10:00:00Z", **keys}


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        (_n(), "job_ids, mpans or mprns"),
        (_n(received_at="2025-05-06T10:00:00", job_ids=["J"]), "received_at"),
        (_n(mpans=["1600123456780"]), "mpans[0]"),
        (_n(mprns=[12345678]), "mprns[0]"),
        (_n(job_ids=["a/b"]), "job_ids[0]"),
        (_n(job_ids=["J"] * 101), "job_ids"),
        ({"received_at": "2025-05-06T10:00:00Z", "job_ids": ["J"]}, "reference"),
        (_n(job_ids=["J"], all=True), "all: unknown key"),
    ],
)
def test_bad_dcc_notices_say_why(doc: dict[str, Any], where: str) -> None:
    answer = parse_dcc_notice(_raw(doc))
    assert isinstance(answer, ErrorDetail)
    assert answer.code is ErrorCode.INVALID_REQUEST
    assert where in answer.reason


# --- converters -------------------------------------------------------------------------

_HUB_EVENTS = [
    (
        WanStateChanged(WanStatus(WanState.SEARCHING, RegState.SEARCHING, None, 40, None, 2)),
        "wan_state",
        {"state": "searching", "reg_state": "searching", "rssi_dbm": None},
    ),
    (
        HanStateChanged(HanStatus(HanState.UP, 11, None, 0x1A2B, EUI, 2)),
        "han_state",
        {"state": "up", "pan_id": "0x1A2B", "extended_pan_id": "00-DB-12-34-56-78-90-A1"},
    ),
    (DeviceJoinSucceeded(EUI), "device_joined", {"eui64": str(EUI)}),
    (
        DeviceJoinFailed(EUI, JoinFailReason.WINDOW_EXPIRED),
        "device_join_failed",
        {"reason": "window_expired"},
    ),
    (
        ThreeLostGsmeSearchesFailed(EUI),
        "device_lost",
        {"reason": "three_lost_gsme_searches_failed"},
    ),
    (ConnectedToEsme(EUI), "esme_connected", {"eui64": str(EUI)}),
    (DisconnectedFromEsme(EUI), "esme_disconnected", {"eui64": str(EUI)}),
    (DeviceLogChanged(), "device_log_changed", {}),
    (HubStarted(StartReason.WATCHDOG), "hub_restarted", {"reason": "watchdog"}),
    (HubStarted(9), "hub_restarted", {"reason": "unknown(9)"}),
    (LinkLost("device vanished"), "link_lost", {"reason": "device vanished"}),
    (LinkUp(reopened=False), "link_up", {"reopened": False}),
    (
        HubSilent(Silence("3 requests in a row went unanswered", 9.1, 3)),
        "hub_silent",
        {"reason": "3 requests in a row went unanswered"},
    ),
    (UnknownEvent(0x8ABC, b"\x01\xff"), "unknown", {"code": 0x8ABC, "payload_hex": "01FF"}),
]


@pytest.mark.parametrize(("event", "kind", "fields"), _HUB_EVENTS)
def test_hub_events_convert(event: Any, kind: str, fields: dict[str, Any]) -> None:
    message = hub_event_message(event, hub="hub", job_id=None, stamp=STAMP)
    doc = json.loads(to_payload(message))
    assert doc["event"]["kind"] == kind
    assert doc["event"].items() >= fields.items()
    assert doc["schema"] == "gatewayd.hub_event/1"
    assert HubEventMessage.model_validate_json(to_payload(message)) == message


def test_every_hub_event_kind_has_a_converter() -> None:
    union = typing.get_args(typing.get_args(HubEventBody)[0])
    kinds = {m.model_fields["kind"].default for m in union}
    assert kinds == {kind for _, kind, _ in _HUB_EVENTS}
    assert hub_event_body(LinkUp(reopened=True)).kind == "link_up"


def test_progress_converts_to_a_job_event() -> None:
    progress = Progress(
        job_id="JOB-1",
        stage=Stage.VERDICT,
        kind=Kind.VERDICT,
        message="Verdict: aborted",
        elapsed_s=812.25,
        wan_state="searching",
        rssi_dbm=-101,
        device=str(EUI),
        data={
            "outcome": Outcome.ABORTED,
            "trail": (1, 2.5),
            "nested": {"n": float("nan")},
            "raw": b"\x00",
            "none": None,
        },
    )
    message = job_event_message(progress, hub="hub", stamp=STAMP)
    doc = json.loads(to_payload(message))
    assert (doc["stage"], doc["kind"], doc["elapsed_s"]) == ("verdict", "verdict", 812.25)
    assert doc["data"]["outcome"] == "aborted"
    assert doc["data"]["trail"] == [1, 2.5]
    assert doc["data"]["nested"] == {"n": "nan"}
    assert doc["data"]["raw"] == "b'\\x00'"
    assert doc["data"]["none"] is None
    assert (doc["session"], doc["seq"], doc["replayed"]) == (3, 7, False)
    assert JobEventMessage.model_validate_json(to_payload(message)) == message
    assert not math.isnan(message.elapsed_s)


def test_abort_notice_only_for_aborts() -> None:
    notice = abort_notice(_result(), hub="hub", topics=T, stamp=STAMP)
    assert notice is not None
    assert notice.code.value == "UNABLE_TO_ESTABLISH_WAN"
    assert notice.result_topic == "gatewayd/kit-7/jobs/JOB-2025-000123/result"
    assert [a.action.value for a in notice.next_actions] == ["monitor_wan_and_reinstruct"]
    assert abort_notice(_result(Outcome.COMMISSIONED), hub="hub", topics=T, stamp=STAMP) is None


# --- generated docs -------------------------------------------------------------------------


def test_committed_docs_match_the_models() -> None:
    assert check(DEFAULT_DOCS_DIR) == [], "run: python -m gatewayd.contract.schema_export"


def _docs_copy(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    shutil.copytree(DEFAULT_DOCS_DIR / "schemas", docs / "schemas")
    shutil.copy(DEFAULT_DOCS_DIR / "asyncapi.yaml", docs / "asyncapi.yaml")
    return docs


def test_drift_is_found_and_fixed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    docs = _docs_copy(tmp_path)
    assert check(docs) == []
    assert main(["--check", "--docs-dir", str(docs)]) == 0
    state = docs / "schemas" / "state.json"
    state.write_text(state.read_text().replace("online", "awake"))
    (docs / "schemas" / "abort.json").unlink()
    (docs / "schemas" / "old.json").write_text("{}\n")
    (docs / "asyncapi.yaml").write_text((docs / "asyncapi.yaml").read_text() + "\n")
    assert sorted(check(docs)) == [
        "asyncapi.yaml",
        "schemas/abort.json",
        "schemas/old.json",
        "schemas/state.json",
    ]
    assert main(["--check", "--docs-dir", str(docs)]) == 1
    err = capsys.readouterr().err
    assert (
        "state.json: differs" in err and "abort.json: missing" in err and "old.json: stale" in err
    )
    assert main(["--docs-dir", str(docs)]) == 0
    assert check(docs) == []
    assert not (docs / "schemas" / "old.json").exists()


def test_generated_files_are_stable() -> None:
    first, second = expected_files(), expected_files()
    assert first == second
    for rel, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), rel
        assert "\r" not in text, rel
        if rel.endswith(".json"):
            assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", rel


def _resolve(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_ref_in_the_asyncapi_file_resolves() -> None:
    text = (DEFAULT_DOCS_DIR / "asyncapi.yaml").read_text()
    refs = re.findall(r'\$ref: "([^"]+)"', text)
    assert refs
    document = asyncapi_document()
    files = set()
    for ref in refs:
        if ref.startswith("#/"):
            _resolve(document, ref[1:])
        else:
            path = DEFAULT_DOCS_DIR / ref
            assert path.is_file(), ref
            files.add(ref)
    assert files == {f"schemas/{p.file}" for p in PAYLOADS}


def test_every_ref_inside_the_schema_files_resolves() -> None:
    for path in sorted((DEFAULT_DOCS_DIR / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        for ref in re.findall(r'"\$ref": "([^"]+)"', path.read_text()):
            assert ref.startswith("#/"), (path.name, ref)
            _resolve(schema, ref[1:])


def test_asyncapi_channels_describe_the_table() -> None:
    document = asyncapi_document()
    channels = document["channels"]
    assert len(channels) == len(CHANNELS)
    for ch in CHANNELS:
        item = channels[f"gatewayd/{ch.address}"]
        verb = "subscribe" if ch.direction is Direction.PUBLISHED else "publish"
        assert set(item) - {"description", "parameters"} == {verb}
        binding = item[verb]["bindings"]["mqtt"]
        assert (binding["qos"], binding["retain"]) == (ch.qos, ch.retain)
        placeholders = re.findall(r"{(\w+)}", ch.address)
        assert list(item.get("parameters", {})) == placeholders
        for name in placeholders:
            assert name in document["components"]["parameters"]


def _yaml() -> Any:
    # PyYAML is optional for the tests: the YAML is written without it, and these two tests
    # only confirm that a real YAML reader agrees.
    try:
        return importlib.import_module("yaml")
    except ImportError:
        pytest.skip("PyYAML is not installed")


def test_asyncapi_file_is_yaml() -> None:
    yaml = _yaml()
    loaded = yaml.safe_load((DEFAULT_DOCS_DIR / "asyncapi.yaml").read_text())
    assert loaded == json.loads(json.dumps(asyncapi_document()))
    assert loaded["asyncapi"] == "2.6.0"


# Escaped, a character can take 10; YAML keys stop at 1024 characters (the emitter refuses more).
_KEYS = st.text(max_size=100)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(_KEYS, _JSONISH, max_size=5))
def test_the_yaml_emitter_round_trips(document: dict[str, Any]) -> None:
    yaml = _yaml()
    assert yaml.safe_load(render_yaml(document)) == document


def test_the_yaml_emitter_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="too long"):
        render_yaml({"k" * 2000: 1})
    with pytest.raises(TypeError, match="float"):
        render_yaml({"k": 1.5})


def test_the_examples_in_the_docs_are_valid_payloads() -> None:
    text = (DEFAULT_DOCS_DIR / "mqtt.md").read_text()
    examples = re.findall(r"<!-- example: (\w+) -->\n```json\n(.*?)\n```", text, re.S)
    by_name = {p.name: p for p in PAYLOADS}
    for name, body in examples:
        by_name[name].model.model_validate_json(body)
    # Every payload but the result (documented in result.py and by its schema) has one.
    assert {name for name, _ in examples} == set(by_name) - {"result"}


def test_write_creates_missing_files(tmp_path: Path) -> None:
    docs = tmp_path / "fresh"
    written = write(docs)
    assert sorted(written) == sorted(expected_files())
    assert check(docs) == []


# --- the package's names, found lazily ---------------------------------------------------


def _type_checking_imports() -> dict[str, str]:
    """Name -> submodule, as the ``if TYPE_CHECKING:`` imports of the package say it."""
    import gatewayd.contract as contract

    tree = ast.parse(Path(contract.__file__ or "").read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1
                for alias in imp.names:
                    found[alias.asname or alias.name] = str(imp.module)
    return found


def test_every_name_of_the_package_comes_from_the_module_the_type_checkers_read() -> None:
    """The lazy table and the imports the type checkers read name the same thing, and each name
    is the submodule's own object."""
    import gatewayd.contract as contract

    table = {name: module for module, names in contract._EXPORTS.items() for name in names}
    assert table == _type_checking_imports()
    assert sorted(table) == sorted(contract.__all__)
    for name, module in table.items():
        home = importlib.import_module(f"gatewayd.contract.{module}")
        assert getattr(contract, name) is getattr(home, name), name
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = contract.Nothing  # type: ignore[attr-defined]
