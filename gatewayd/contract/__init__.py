"""The MQTT contract as data: topics, payload models, request parsing and converters.

Publications side of the flow (probe outcomes -> verdict -> **publications**), and the inbound
half that feeds it: requests from back offices and DCC notices. Everything a back office can
see or send is a pydantic model here; ``python -m gatewayd.contract.schema_export`` writes their
JSON Schemas and the AsyncAPI document into ``docs/``, and ``docs/mqtt.md`` explains them.

- ``topics``: ``Topics`` (every topic string, level validation, subscription filters).
- ``messages``: what the kit publishes (state, info, availability, hub and job events,
  aborts) and the event envelope.
- ``requests``: ``request/<command>`` and ``response/<command>``, ``parse_request``.
- ``dcc_notice``: the DCC notice back offices publish, ``parse_dcc_notice``.
- ``survey``: the RF survey the kit publishes after a ``request/survey``.
- ``convert``: hub events, ``Progress`` and results to payloads (models, or for the daemon's
  own events the payload bytes straight away).
- ``channels``: one row per topic (QoS, retained, payloads) and one per schema file.

Every name above is importable from this package, but a submodule is only imported when one
of its names is first used (PEP 562): `gatewayd run` reaches READY without building the
request, DCC notice and survey models, which it needs only when a back office sends one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channels import (
        CHANNELS,
        CONTRACT_VERSION,
        PAYLOADS,
        Channel,
        Direction,
        Payload,
        channel,
        payload_for,
    )
    from .convert import (
        abort_notice,
        hub_event_body,
        hub_event_message,
        hub_event_payload,
        job_event_message,
        job_event_payload,
        jsonable,
    )
    from .dcc_notice import MAX_NOTICE_TARGETS, DccNoticeMessage, parse_dcc_notice
    from .decode import MAX_REQUEST_BYTES, ErrorCode, ErrorDetail, decode_object
    from .messages import (
        AbortNotice,
        Availability,
        DeviceJoinedEvent,
        DeviceJoinFailedEvent,
        DeviceLogChangedEvent,
        DeviceLostEvent,
        Envelope,
        EsmeConnectedEvent,
        EsmeDisconnectedEvent,
        HanStateEvent,
        HubEventBody,
        HubEventMessage,
        HubPortDoc,
        HubRestartedEvent,
        HubSilentEvent,
        Info,
        JobEventMessage,
        LinkLostEvent,
        LinkUpEvent,
        Presence,
        StampFields,
        State,
        UnknownHubEvent,
        WanStateEvent,
        config_digest,
        new_event_id,
        replayed,
        state_payload,
        to_payload,
    )
    from .requests import (
        REQUEST_MODELS,
        RESPONSE_MODELS,
        CancelJobRequest,
        CancelJobResponse,
        ErrorResponse,
        HubStatusDoc,
        OutboxDoc,
        RebirthRequest,
        RebirthResponse,
        Request,
        Response,
        RunningJobDoc,
        StartJobRequest,
        StartJobResponse,
        StatusRequest,
        StatusResponse,
        SurveyRequest,
        SurveyResponse,
        parse_request,
    )
    from .survey import SurveyMessage
    from .topics import (
        DEFAULT_PREFIX,
        RESERVED_KIT_IDS,
        Command,
        NoticeTopic,
        Region,
        RequestTopic,
        TopicError,
        Topics,
        is_safe_level,
        validate_job_id,
        validate_level,
        validate_prefix,
    )

__all__ = [
    "CHANNELS",
    "CONTRACT_VERSION",
    "DEFAULT_PREFIX",
    "MAX_NOTICE_TARGETS",
    "MAX_REQUEST_BYTES",
    "PAYLOADS",
    "REQUEST_MODELS",
    "RESERVED_KIT_IDS",
    "RESPONSE_MODELS",
    "AbortNotice",
    "Availability",
    "CancelJobRequest",
    "CancelJobResponse",
    "Channel",
    "Command",
    "DccNoticeMessage",
    "DeviceJoinFailedEvent",
    "DeviceJoinedEvent",
    "DeviceLogChangedEvent",
    "DeviceLostEvent",
    "Direction",
    "Envelope",
    "ErrorCode",
    "ErrorDetail",
    "ErrorResponse",
    "EsmeConnectedEvent",
    "EsmeDisconnectedEvent",
    "HanStateEvent",
    "HubEventBody",
    "HubEventMessage",
    "HubPortDoc",
    "HubRestartedEvent",
    "HubSilentEvent",
    "HubStatusDoc",
    "Info",
    "JobEventMessage",
    "LinkLostEvent",
    "LinkUpEvent",
    "NoticeTopic",
    "OutboxDoc",
    "Payload",
    "Presence",
    "RebirthRequest",
    "RebirthResponse",
    "Region",
    "Request",
    "RequestTopic",
    "Response",
    "RunningJobDoc",
    "StampFields",
    "StartJobRequest",
    "StartJobResponse",
    "State",
    "StatusRequest",
    "StatusResponse",
    "SurveyMessage",
    "SurveyRequest",
    "SurveyResponse",
    "TopicError",
    "Topics",
    "UnknownHubEvent",
    "WanStateEvent",
    "abort_notice",
    "channel",
    "config_digest",
    "decode_object",
    "hub_event_body",
    "hub_event_message",
    "hub_event_payload",
    "is_safe_level",
    "job_event_message",
    "job_event_payload",
    "jsonable",
    "new_event_id",
    "parse_dcc_notice",
    "parse_request",
    "payload_for",
    "replayed",
    "state_payload",
    "to_payload",
    "validate_job_id",
    "validate_level",
    "validate_prefix",
]

# Where each name of ``__all__`` lives, as the imports above say it for the type checkers;
# tests/unit/test_contract.py holds the two to the same names.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "channels": (
        "CHANNELS",
        "CONTRACT_VERSION",
        "PAYLOADS",
        "Channel",
        "Direction",
        "Payload",
        "channel",
        "payload_for",
    ),
    "convert": (
        "abort_notice",
        "hub_event_body",
        "hub_event_message",
        "hub_event_payload",
        "job_event_message",
        "job_event_payload",
        "jsonable",
    ),
    "dcc_notice": (
        "MAX_NOTICE_TARGETS",
        "DccNoticeMessage",
        "parse_dcc_notice",
    ),
    "decode": (
        "MAX_REQUEST_BYTES",
        "ErrorCode",
        "ErrorDetail",
        "decode_object",
    ),
    "messages": (
        "AbortNotice",
        "Availability",
        "DeviceJoinedEvent",
        "DeviceJoinFailedEvent",
        "DeviceLogChangedEvent",
        "DeviceLostEvent",
        "Envelope",
        "EsmeConnectedEvent",
        "EsmeDisconnectedEvent",
        "HanStateEvent",
        "HubEventBody",
        "HubEventMessage",
        "HubPortDoc",
        "HubRestartedEvent",
        "HubSilentEvent",
        "Info",
        "JobEventMessage",
        "LinkLostEvent",
        "LinkUpEvent",
        "Presence",
        "StampFields",
        "State",
        "UnknownHubEvent",
        "WanStateEvent",
        "config_digest",
        "new_event_id",
        "replayed",
        "state_payload",
        "to_payload",
    ),
    "requests": (
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
    ),
    "survey": ("SurveyMessage",),
    "topics": (
        "DEFAULT_PREFIX",
        "RESERVED_KIT_IDS",
        "Command",
        "NoticeTopic",
        "Region",
        "RequestTopic",
        "TopicError",
        "Topics",
        "is_safe_level",
        "validate_job_id",
        "validate_level",
        "validate_prefix",
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


if not TYPE_CHECKING:
    # Hidden from the type checkers, which read the imports above: to them a module-level
    # __getattr__ would make every misspelt name of this package an Any.

    def __getattr__(name: str) -> Any:
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # __import__, not importlib.import_module: `python -X importtime` (which the tests and
        # the start-up profile read) only sees imports that go through the import statement's
        # machinery.
        __import__(f"{__name__}.{module}")
        value = getattr(sys.modules[f"{__name__}.{module}"], name)
        # Found once: later uses read the package's own attribute.
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
