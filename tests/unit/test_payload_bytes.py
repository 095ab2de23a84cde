"""The daemon's fast payloads are byte for byte the payloads of the validated models.

Hub events and job events are published from ``hub_event_payload`` and ``job_event_payload``,
which serialize without building or validating the contract models. Every kind of event, with
awkward values (no microseconds, another time zone, text that needs escaping, integers where
the model holds floats, non-finite numbers), must give exactly the bytes ``to_payload`` gives
for the validated model; and a few samples are pinned to the bytes the daemon published before
these builders existed.
"""

from __future__ import annotations

import hashlib
import math
import typing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.contract import (
    HubEventBody,
    JobEventMessage,
    StampFields,
    hub_event_message,
    hub_event_payload,
    job_event_message,
    job_event_payload,
    to_payload,
)
from gatewayd.engine.progress import Kind, Progress, Stage
from gatewayd.engine.verdict import Outcome
from gatewayd_drivers.commshub.client import ClientEvent, HubSilent, LinkLost, LinkUp
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

EUI = Eui64.parse("00-DB-12-34-56-78-90-A1")
TS = datetime(2025, 5, 6, 9, 0, 1, 250000, tzinfo=UTC)
STAMPS = [
    StampFields(session=3, seq=7, ts=TS, event_id="5f0c6a57-0000-4000-8000-000000000001"),
    # No microseconds, a replay, a first session.
    StampFields(
        session=0,
        seq=1,
        ts=TS.replace(microsecond=0),
        event_id="5f0c6a57-0000-4000-8000-000000000002",
        replayed=True,
    ),
    # A clock that is not UTC.
    StampFields(
        session=12,
        seq=99999,
        ts=TS.astimezone(timezone(timedelta(hours=1))),
        event_id="5f0c6a57-0000-4000-8000-000000000003",
    ),
]

HUB_EVENTS: list[ClientEvent] = [
    WanStateChanged(WanStatus(WanState.CONNECTED, RegState.REGISTERED_HOME, -71, 5, 3, 1)),
    WanStateChanged(WanStatus(WanState.SEARCHING, RegState.SEARCHING, None, 40, None, 2)),
    WanStateChanged(WanStatus(9, 17, -128, 2**32 - 1, 0, 65535)),  # numbers the spec lacks
    HanStateChanged(HanStatus(HanState.UP, 11, None, 0x1A2B, EUI, 2)),
    HanStateChanged(HanStatus(HanState.DOWN, 26, 3, 0xFFFF, EUI, 0)),
    DeviceJoinSucceeded(EUI),
    DeviceJoinFailed(EUI, JoinFailReason.WINDOW_EXPIRED),
    DeviceJoinFailed(EUI, 77),
    ThreeLostGsmeSearchesFailed(EUI),
    ConnectedToEsme(EUI),
    DisconnectedFromEsme(EUI),
    DeviceLogChanged(),
    HubStarted(StartReason.WATCHDOG),
    HubStarted(9),
    LinkLost('device "vanished"\n\tback\\slash é ✓ \x01'),
    LinkUp(reopened=False),
    LinkUp(reopened=True),
    HubSilent(Silence("3 requests in a row went unanswered", 9.1, 3)),
    UnknownEvent(0x8ABC, b"\x01\xff"),
    UnknownEvent(0, b""),
]


def test_every_hub_event_kind_is_sampled() -> None:
    union = typing.get_args(typing.get_args(HubEventBody)[0])
    kinds = {m.model_fields["kind"].default for m in union}
    sampled = {
        hub_event_message(e, hub="h", job_id=None, stamp=STAMPS[0]).event.kind for e in HUB_EVENTS
    }
    assert sampled == kinds


@pytest.mark.parametrize("stamp", STAMPS, ids=["live", "replayed", "utc+1"])
@pytest.mark.parametrize("event", HUB_EVENTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("job_id", [None, "JOB-2025-000123"])
def test_hub_event_payload_is_the_models_bytes(
    event: ClientEvent, stamp: StampFields, job_id: str | None
) -> None:
    fast = hub_event_payload(event, hub="hub-7.b", job_id=job_id, stamp=stamp)
    assert fast == to_payload(hub_event_message(event, hub="hub-7.b", job_id=job_id, stamp=stamp))


def _progress(**changes: Any) -> Progress:
    base: dict[str, Any] = {
        "job_id": "JOB-1",
        "stage": Stage.WAN,
        "kind": Kind.ATTEMPT,
        "message": "Poll 2",
        "elapsed_s": 12.5,
    }
    return Progress(**{**base, **changes})


PROGRESS = [
    _progress(),
    _progress(elapsed_s=0),  # an int where the model holds a float
    _progress(elapsed_s=-3.0),  # a clock stepped back
    _progress(elapsed_s=1e16),
    _progress(elapsed_s=1e-7),
    _progress(elapsed_s=math.inf),
    _progress(
        stage=Stage.VERDICT,
        kind=Kind.VERDICT,
        message='Verdict: "aborted"\nnext: rebook ✓',
        attempt=3,
        wan_state="searching",
        rssi_dbm=-101,
        device=str(EUI),
        data={
            "outcome": Outcome.ABORTED,
            "trail": (1, 2.5, -0.0, 1e-7, 123456789012345678),
            "nested": {"n": float("nan"), "i": float("inf"), "list": [None, True, "x"]},
            "raw": b"\x00",
            "none": None,
            7: "a key that is no string",
        },
    ),
    *(_progress(stage=stage, kind=kind) for stage in Stage for kind in Kind),
]


@pytest.mark.parametrize("stamp", STAMPS, ids=["live", "replayed", "utc+1"])
@pytest.mark.parametrize("progress", PROGRESS)
def test_job_event_payload_is_the_models_bytes(progress: Progress, stamp: StampFields) -> None:
    fast = job_event_payload(progress, hub="hub", stamp=stamp)
    assert fast == to_payload(job_event_message(progress, hub="hub", stamp=stamp))
    if math.isfinite(progress.elapsed_s):
        # (An infinite elapsed_s, which no clock gives, is published as null, as it always
        # was, and does not read back.)
        assert JobEventMessage.model_validate_json(fast) == job_event_message(
            progress, hub="hub", stamp=stamp
        )


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    message=st.text(),
    elapsed=st.floats(allow_nan=False) | st.integers(min_value=0, max_value=10**9),
    data=st.dictionaries(st.text(), _json, max_size=5),
    attempt=st.none() | st.integers(min_value=0, max_value=10**6),
    rssi=st.none() | st.integers(min_value=-128, max_value=127),
    micros=st.integers(min_value=0, max_value=999_999),
)
def test_any_job_event_payload_is_the_models_bytes(
    message: str,
    elapsed: float,
    data: dict[str, Any],
    attempt: int | None,
    rssi: int | None,
    micros: int,
) -> None:
    progress = _progress(
        message=message, elapsed_s=elapsed, data=data, attempt=attempt, rssi_dbm=rssi
    )
    stamp = StampFields(session=1, seq=2, ts=TS.replace(microsecond=micros))
    fast = job_event_payload(progress, hub="hub", stamp=stamp)
    assert fast == to_payload(job_event_message(progress, hub="hub", stamp=stamp))


@settings(max_examples=200, deadline=None)
@given(reason=st.text(), code=st.integers(min_value=0, max_value=0xFFFF), raw=st.binary())
def test_any_free_text_hub_event_payload_is_the_models_bytes(
    reason: str, code: int, raw: bytes
) -> None:
    for event in (LinkLost(reason), UnknownEvent(code, raw)):
        fast = hub_event_payload(event, hub="hub", job_id=None, stamp=STAMPS[0])
        assert fast == to_payload(hub_event_message(event, hub="hub", job_id=None, stamp=STAMPS[0]))


# The SHA-256 of every payload of ``pinned()``, as the daemon published them before the fast
# builders existed (computed with the validated models of that version).
PINNED_SHA256 = "4f8a435ae89f2fcff0790dc81ceb3d91a70781f279a46954bcb9c9bd3247e514"


def pinned() -> bytes:
    """Every hub event sample under every stamp, then every progress sample: one per line."""
    lines = [
        to_payload_of
        for stamp in STAMPS
        for to_payload_of in (
            *(hub_event_payload(e, hub="hub", job_id="J-1", stamp=stamp) for e in HUB_EVENTS),
            *(job_event_payload(p, hub="hub", stamp=stamp) for p in PROGRESS),
        )
    ]
    return b"\n".join(lines)


def test_the_payloads_are_those_published_before() -> None:
    assert hashlib.sha256(pinned()).hexdigest() == PINNED_SHA256
