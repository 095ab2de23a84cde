"""From what the kit knows to what it publishes: hub events, progress and results to payloads.

Publications side of the flow: the hub client's events (``gatewayd_drivers.commshub``), the engine's
``Progress`` records and a finished ``ResultDocument`` come in; contract models go out. The
conversions are total: every hub event, known or not, has a payload, and a progress record
whose extra data holds something JSON cannot carry is published with that value as text
rather than dropped.

Hub events and job events are the messages the daemon makes by the thousand, so each has two
builders over one mapping of its fields: ``hub_event_message`` and ``job_event_message`` build
and validate the contract model (for tests, tools, and anyone who wants the object), while
``hub_event_payload`` and ``job_event_payload`` serialize the same fields straight to the bytes
``to_payload`` would give for that model, with pydantic-core's own JSON serializer and without
validating: the values are the kit's own (labels it formats, names its config validated), and
building the models is what costs (measured: 9.5 µs a hub event and 8 µs a job event with the
models, 3 to 3.5 µs without). The unit tests hold both builders to the same bytes for every
kind of event, so a field added to a model and not here, a coercion validation would have
made, or a key out of order fails there.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, assert_never

from pydantic import JsonValue
from pydantic_core import to_json

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
    "hub_event_payload",
    "job_event_message",
    "job_event_payload",
    "jsonable",
]


def _label(value: enum.IntEnum | int) -> str:
    # enum_label only returns None for None, which these fields never are.
    return enum_label(value) or "unknown"


# The body models by their ``kind``, to validate a body's fields into the right one.
_BODY_MODELS: Final[dict[str, type[HubEventBody]]] = {
    m.model_fields["kind"].default: m
    for m in (
        WanStateEvent,
        HanStateEvent,
        DeviceJoinedEvent,
        DeviceJoinFailedEvent,
        DeviceLostEvent,
        EsmeConnectedEvent,
        EsmeDisconnectedEvent,
        DeviceLogChangedEvent,
        HubRestartedEvent,
        LinkLostEvent,
        HubSilentEvent,
        LinkUpEvent,
        UnknownHubEvent,
    )
}
_HUB_EVENT_SCHEMA: Final[str] = HubEventMessage.model_fields["schema_"].default
_JOB_EVENT_SCHEMA: Final[str] = JobEventMessage.model_fields["schema_"].default


def _hub_event_fields(event: ClientEvent) -> dict[str, Any]:
    """The ``event`` object's keys and values, in the model's field order."""
    match event:
        case WanStateChanged(status=s):
            return {
                "kind": "wan_state",
                "state": _label(s.state),
                "reg_state": _label(s.reg_state),
                "rssi_dbm": s.rssi_dbm,
                "seconds_in_state": s.seconds_in_state,
                "last_dcc_contact_s": s.last_dcc_contact_s,
                "attach_attempts": s.attach_attempts,
            }
        case HanStateChanged(status=s):
            return {
                "kind": "han_state",
                "state": _label(s.state),
                "channel": s.channel,
                "subghz_channel": s.subghz_channel,
                "pan_id": f"0x{s.pan_id:04X}",
                "extended_pan_id": str(s.extended_pan_id),
                "open_join_windows": s.open_join_windows,
            }
        case DeviceJoinSucceeded(eui64=eui):
            return {"kind": "device_joined", "eui64": str(eui)}
        case DeviceJoinFailed(eui64=eui, reason=reason):
            return {"kind": "device_join_failed", "eui64": str(eui), "reason": _label(reason)}
        case ThreeLostGsmeSearchesFailed(eui64=eui):
            return {
                "kind": "device_lost",
                "eui64": str(eui),
                "reason": "three_lost_gsme_searches_failed",
            }
        case ConnectedToEsme(eui64=eui):
            return {"kind": "esme_connected", "eui64": str(eui)}
        case DisconnectedFromEsme(eui64=eui):
            return {"kind": "esme_disconnected", "eui64": str(eui)}
        case DeviceLogChanged():
            return {"kind": "device_log_changed"}
        case HubStarted(reason=reason):
            return {"kind": "hub_restarted", "reason": _label(reason)}
        case LinkLost(reason=reason):
            return {"kind": "link_lost", "reason": reason}
        case HubSilent(silence=silence):
            return {"kind": "hub_silent", "reason": silence.reason}
        case LinkUp(reopened=reopened):
            return {"kind": "link_up", "reopened": reopened}
        case UnknownEvent(cmd=cmd, payload=payload):
            return {"kind": "unknown", "code": cmd, "payload_hex": payload.hex().upper()}
        case _:
            assert_never(event)


def _envelope(schema: str, stamp: StampFields) -> dict[str, Any]:
    """The envelope's keys and values, in ``Envelope``'s field order."""
    return {
        "schema": schema,
        "event_id": stamp.event_id,
        "session": stamp.session,
        "seq": stamp.seq,
        "ts": stamp.ts,
        "replayed": stamp.replayed,
    }


def _dump(fields: dict[str, Any]) -> bytes:
    # As ``to_payload`` dumps a model: non-finite floats as null (pydantic's default for
    # models; bare to_json would write NaN, which is no JSON).
    return to_json(fields, inf_nan_mode="null")


def hub_event_body(event: ClientEvent) -> HubEventBody:
    """The ``event`` object of a hub event message, for any event the hub client delivers."""
    fields = _hub_event_fields(event)
    return _BODY_MODELS[fields["kind"]].model_validate(fields)


def hub_event_message(
    event: ClientEvent, *, hub: str, job_id: str | None, stamp: StampFields
) -> HubEventMessage:
    return HubEventMessage(**stamp.fields(), hub=hub, job_id=job_id, event=hub_event_body(event))


def hub_event_payload(
    event: ClientEvent, *, hub: str, job_id: str | None, stamp: StampFields
) -> bytes:
    """``to_payload(hub_event_message(...))``, the same bytes, without the models."""
    fields = _envelope(_HUB_EVENT_SCHEMA, stamp)
    fields["hub"] = hub
    fields["job_id"] = job_id
    fields["event"] = _hub_event_fields(event)
    return _dump(fields)


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


def _job_event_fields(progress: Progress, hub: str) -> dict[str, Any]:
    """A job event's keys and values after the envelope, in the model's field order."""
    return {
        "job_id": progress.job_id,
        "hub": hub,
        "stage": progress.stage.value,
        "kind": progress.kind.value,
        "message": progress.message,
        # float(): the model's field is a float, and validation would make an int one.
        "elapsed_s": float(max(0.0, progress.elapsed_s)),
        "attempt": progress.attempt,
        "wan_state": progress.wan_state,
        "rssi_dbm": progress.rssi_dbm,
        "device": progress.device,
        "data": {str(k): jsonable(v) for k, v in progress.data.items()},
    }


def job_event_message(progress: Progress, *, hub: str, stamp: StampFields) -> JobEventMessage:
    """One ``Progress`` record of the engine as a job event."""
    return JobEventMessage.model_validate(
        {**_envelope(_JOB_EVENT_SCHEMA, stamp), **_job_event_fields(progress, hub)}
    )


def job_event_payload(progress: Progress, *, hub: str, stamp: StampFields) -> bytes:
    """``to_payload(job_event_message(...))``, the same bytes, without the model."""
    return _dump({**_envelope(_JOB_EVENT_SCHEMA, stamp), **_job_event_fields(progress, hub)})


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
