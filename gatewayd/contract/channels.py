"""The contract's table of channels and payload schemas: one row per topic, one per payload.

Publications side of the flow. The daemon takes each topic's QoS and retained flag from
``CHANNELS`` (so what it does and what the docs promise are the same data), and
``gatewayd.contract.schema_export`` writes ``docs/schemas/*.json`` and ``docs/asyncapi.yaml`` from
``PAYLOADS`` and ``CHANNELS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel

from gatewayd.engine.result import ResultDocument

from .dcc_notice import DccNoticeMessage
from .messages import AbortNotice, Availability, HubEventMessage, Info, JobEventMessage, State
from .requests import (
    CancelJobRequest,
    CancelJobResponse,
    ErrorResponse,
    RebirthRequest,
    RebirthResponse,
    StartJobRequest,
    StartJobResponse,
    StatusRequest,
    StatusResponse,
    SurveyRequest,
    SurveyResponse,
)
from .survey import SurveyMessage

__all__ = [
    "CHANNELS",
    "CONTRACT_VERSION",
    "PAYLOADS",
    "Channel",
    "Direction",
    "Payload",
    "channel",
    "payload_for",
]

# The contract as a whole (the AsyncAPI document's version). Each payload also carries its own
# schema version ("gatewayd.hub_event/1"); a change to any payload's keys bumps both.
CONTRACT_VERSION: Final = "2.0.0"


class Direction(enum.StrEnum):
    PUBLISHED = "published"  # the kit publishes; back offices subscribe
    RECEIVED = "received"  # back offices publish; the kit subscribes


@dataclass(frozen=True, slots=True)
class Payload:
    """One payload kind: its schema file ``docs/schemas/<name>.json`` and its model.

    ``mode``: published payloads are described as sent (every key present); received ones as
    accepted (keys with defaults may be left out).
    """

    name: str
    model: type[BaseModel]
    mode: Literal["serialization", "validation"]
    title: str

    @property
    def file(self) -> str:
        return f"{self.name}.json"


PAYLOADS: Final[tuple[Payload, ...]] = (
    Payload("state", State, "serialization", "Kit presence"),
    Payload("info", Info, "serialization", "Kit birth"),
    Payload("availability", Availability, "serialization", "Hub availability"),
    Payload("hub_event", HubEventMessage, "serialization", "Hub event"),
    Payload("job_event", JobEventMessage, "serialization", "Job event"),
    Payload("result", ResultDocument, "serialization", "Job result"),
    Payload("abort", AbortNotice, "serialization", "SMETS abort"),
    Payload("start_job_request", StartJobRequest, "validation", "Start a job"),
    Payload("cancel_job_request", CancelJobRequest, "validation", "Cancel a job"),
    Payload("status_request", StatusRequest, "validation", "Ask for status"),
    Payload("rebirth_request", RebirthRequest, "validation", "Ask for a rebirth"),
    Payload("start_job_response", StartJobResponse, "serialization", "Job started"),
    Payload("cancel_job_response", CancelJobResponse, "serialization", "Job cancelling"),
    Payload("status_response", StatusResponse, "serialization", "Kit status"),
    Payload("rebirth_response", RebirthResponse, "serialization", "Rebirth done"),
    Payload("error_response", ErrorResponse, "serialization", "Request refused"),
    Payload("dcc_notice", DccNoticeMessage, "validation", "DCC notice"),
    Payload("survey_request", SurveyRequest, "validation", "Take an RF survey"),
    Payload("survey_response", SurveyResponse, "serialization", "RF survey started"),
    Payload("survey", SurveyMessage, "serialization", "RF survey"),
)

_BY_MODEL: Final = {p.model: p for p in PAYLOADS}


def payload_for(model: type[BaseModel]) -> Payload:
    return _BY_MODEL[model]


@dataclass(frozen=True, slots=True)
class Channel:
    """One topic (pattern) of the contract.

    ``address`` is relative to the prefix, with ``{kit_id}``, ``{hub}``, ``{job_id}``,
    ``{command}`` and ``{region}`` standing for one topic level each.
    """

    key: str
    address: str
    direction: Direction
    qos: Literal[0, 1, 2]
    retain: bool
    payloads: tuple[Payload, ...]
    summary: str

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(level[1:-1] for level in self.address.split("/") if level.startswith("{"))


def _p(*models: type[BaseModel]) -> tuple[Payload, ...]:
    return tuple(payload_for(m) for m in models)


PUB, RECV = Direction.PUBLISHED, Direction.RECEIVED

CHANNELS: Final[tuple[Channel, ...]] = (
    Channel(
        "state", "{kit_id}/state", PUB, 1, True, _p(State),
        "The kit's presence: online on every connect, offline at a clean stop and as the "
        "last will, each with the connection's session number.",
    ),
    Channel(
        "info", "{kit_id}/info", PUB, 1, True, _p(Info),
        "The kit's birth: version, config digest, hubs and ports, capabilities.",
    ),
    Channel(
        "hub_availability", "{kit_id}/hubs/{hub}/availability", PUB, 1, True,
        _p(Availability),
        "Whether the kit can reach this hub over its serial link.",
    ),
    Channel(
        "hub_events", "{kit_id}/hubs/{hub}/events", PUB, 1, False, _p(HubEventMessage),
        "What the hub reports, whether or not a job runs: WAN and HAN state, device joins "
        "and failures, restarts, serial link loss and return.",
    ),
    Channel(
        "job_events", "{kit_id}/jobs/{job_id}/events", PUB, 1, False, _p(JobEventMessage),
        "A job's steps: stage changes, probe attempts, hub state, device joins, the verdict.",
    ),
    Channel(
        "job_result", "{kit_id}/jobs/{job_id}/result", PUB, 1, True, _p(ResultDocument),
        "The job's final result: the same document as `gatewayd probe --json`.",
    ),
    Channel(
        "aborts", "{kit_id}/aborts", PUB, 1, False, _p(AbortNotice),
        "Every SMETS abort of this kit, for back offices that watch all jobs.",
    ),
    Channel(
        "request", "{kit_id}/request/{command}", RECV, 1, False,
        _p(StartJobRequest, CancelJobRequest, StatusRequest, RebirthRequest, SurveyRequest),
        "Requests to the kit; each is answered on response/{command}.",
    ),
    Channel(
        "response", "{kit_id}/response/{command}", PUB, 1, False,
        _p(
            StartJobResponse, CancelJobResponse, StatusResponse, RebirthResponse,
            SurveyResponse, ErrorResponse,
        ),
        "The kit's answer to a request, echoing its transaction.",
    ),
    Channel(
        "request_errors", "{kit_id}/request_errors", PUB, 1, False, _p(ErrorResponse),
        "The answer to a request whose command is not one safe topic level (a space, '+', "
        "'#' or more than 64 characters), so it has no response/{command} topic of its own.",
    ),
    Channel(
        "survey", "{kit_id}/survey", PUB, 1, True, _p(SurveyMessage),
        "The latest RF survey the kit's radio took at a request/survey (or why it failed): "
        "channel energy, networks heard, the hub's signal and the judgement.",
    ),
    Channel(
        "dcc_notice", "{kit_id}/dcc/notice", RECV, 1, False, _p(DccNoticeMessage),
        "A DCC Service Centre notice for this kit's jobs. Publish it not retained.",
    ),
    Channel(
        "region_dcc_notice", "region/{region}/dcc/notice", RECV, 1, False,
        _p(DccNoticeMessage),
        "A DCC Service Centre notice for every kit in a CSP region; each kit applies it only "
        "to a running job it names. Publish it not retained.",
    ),
)  # fmt: skip

_BY_KEY: Final = {c.key: c for c in CHANNELS}


def channel(key: str) -> Channel:
    """The channel named ``key`` (``"job_result"``...): for its QoS and retained flag."""
    return _BY_KEY[key]
