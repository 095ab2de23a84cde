"""From what the kit knows to what it publishes: hub events, progress and results to payloads.

Publications side of the flow: the hub client's events (``gatewayd_drivers.commshub``), the engine's
``Progress`` records and a finished ``ResultDocument`` come in; contract models go out. The
conversions are total: every hub event, known or not, has a payload, and a progress record
whose extra data holds something JSON cannot carry is published with that value as text
rather than dropped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import assert_never

from pydantic import JsonValue

from gatewayd.engine.outcomes import enum_label
from gatewayd.engine.progress import Progress
from gatewayd.engine.result import ResultDocument
from gatewayd.engine.verdict import Outcome
from gatewayd_drivers.commshub.client import ClientEvent, HubSilent, LinkLost, LinkUp
from gatewayd_drivers.commshub.messages import (
    ConnectedToEsme,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLogChanged,
    DisconnectedFromEsme,
    HanStateChanged,
    HubStarted,
    ThreeLostGsmeSearchesFailed,
    UnknownEvent,
    WanStateChanged,
)

from .messages import (
    AbortNotice,
    DeviceJoinedEvent,
    DeviceJoinFailedEvent,
    DeviceLogChangedEvent,
    DeviceLostEvent,
    EsmeConnectedEvent,
    EsmeDisconnectedEvent,
    HanStateEvent,
    HubEventBody,
    HubEventMessage,
    HubRestartedEvent,
    HubSilentEvent,
    JobEventMessage,
    LinkLostEvent,
    LinkUpEvent,
    StampFields,
    UnknownHubEvent,
    WanStateEvent,
)
from .topics import Topics

__all__ = [
    "abort_notice",
    "hub_event_body",
    "hub_event_message",
    "job_event_message",
    "jsonable",
]


def _label(value: enum.IntEnum | int) -> str:
    # enum_label only returns None for None, which these fields never are.
    return enum_label(value) or "unknown"


def hub_event_body(event: ClientEvent) -> HubEventBody:
    """The ``event`` object of a hub event message, for any event the hub client delivers."""
    match event:
        case WanStateChanged(status=s):
            return WanStateEvent(
                state=_label(s.state),
                reg_state=_label(s.reg_state),
                rssi_dbm=s.rssi_dbm,
                seconds_in_state=s.seconds_in_state,
                last_dcc_contact_s=s.last_dcc_contact_s,
                attach_attempts=s.attach_attempts,
            )
        case HanStateChanged(status=s):
            return HanStateEvent(
                state=_label(s.state),
                channel=s.channel,
                subghz_channel=s.subghz_channel,
                pan_id=f"0x{s.pan_id:04X}",
                extended_pan_id=str(s.extended_pan_id),
                open_join_windows=s.open_join_windows,
            )
        case DeviceJoinSucceeded(eui64=eui):
            return DeviceJoinedEvent(eui64=str(eui))
        case DeviceJoinFailed(eui64=eui, reason=reason):
            return DeviceJoinFailedEvent(eui64=str(eui), reason=_label(reason))
        case ThreeLostGsmeSearchesFailed(eui64=eui):
            return DeviceLostEvent(eui64=str(eui), reason="three_lost_gsme_searches_failed")
        case ConnectedToEsme(eui64=eui):
            return EsmeConnectedEvent(eui64=str(eui))
        case DisconnectedFromEsme(eui64=eui):
            return EsmeDisconnectedEvent(eui64=str(eui))
        case DeviceLogChanged():
            return DeviceLogChangedEvent()
        case HubStarted(reason=reason):
            return HubRestartedEvent(reason=_label(reason))
        case LinkLost(reason=reason):
            return LinkLostEvent(reason=reason)
        case HubSilent(silence=silence):
            return HubSilentEvent(reason=silence.reason)
        case LinkUp(reopened=reopened):
            return LinkUpEvent(reopened=reopened)
        case UnknownEvent(cmd=cmd, payload=payload):
            return UnknownHubEvent(code=cmd, payload_hex=payload.hex().upper())
        case _:
            assert_never(event)


def hub_event_message(
    event: ClientEvent, *, hub: str, job_id: str | None, stamp: StampFields
) -> HubEventMessage:
    return HubEventMessage(**stamp.fields(), hub=hub, job_id=job_id, event=hub_event_body(event))


def jsonable(value: object) -> JsonValue:
    """``value`` as JSON can carry it: enums by value, tuples as lists, the rest as text."""
    if isinstance(value, enum.Enum):  # before str and int: StrEnum and IntEnum are both
        return jsonable(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON numbers.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [jsonable(v) for v in value]
    return str(value)


def job_event_message(progress: Progress, *, hub: str, stamp: StampFields) -> JobEventMessage:
    """One ``Progress`` record of the engine as a job event."""
    return JobEventMessage(
        **stamp.fields(),
        job_id=progress.job_id,
        hub=hub,
        stage=progress.stage,
        kind=progress.kind,
        message=progress.message,
        elapsed_s=max(0.0, progress.elapsed_s),
        attempt=progress.attempt,
        wan_state=progress.wan_state,
        rssi_dbm=progress.rssi_dbm,
        device=progress.device,
        data={str(k): jsonable(v) for k, v in progress.data.items()},
    )


def abort_notice(
    result: ResultDocument, *, hub: str, topics: Topics, stamp: StampFields
) -> AbortNotice | None:
    """The ``aborts`` topic's notice for a result, or None when the job did not abort."""
    if result.outcome is not Outcome.ABORTED or result.abort is None:
        return None
    return AbortNotice(
        **stamp.fields(),
        job_id=result.job_id,
        hub=hub,
        code=result.abort.code,
        title=result.abort.title,
        stage=result.stage,
        next_actions=list(result.next_actions),
        result_topic=topics.job_result(result.job_id),
    )
