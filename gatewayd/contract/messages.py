"""The payloads the kit publishes: presence, birth, hub availability, hub and job events, aborts.

Publications side of the flow: the last step, after the verdict. The models are the contract
for both ends: the daemon builds them and publishes ``to_payload(model)``; a back office in
Python can ``model_validate_json`` what it receives, and everyone else has the JSON Schema
files generated from these models into ``docs/schemas/``.

Events (hub events, job events, aborts) share an envelope (``Envelope``): a schema version,
an ``event_id`` to dedupe on, the kit's ``session`` and a per-topic ``seq`` that shows gaps,
the time it happened, and ``replayed``. Retained status topics (state, info, availability)
carry no sequence: each is a snapshot that replaces the previous one. The job result is the
``gatewayd.result/1`` document of ``gatewayd.engine.result``, published unchanged.

Hub enums are published as lower-case names (``connected``; ``unknown(7)`` for a number the
spec does not list), as in the result document.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from gatewayd.config.job import JobId
from gatewayd.engine.progress import Kind as ProgressKind
from gatewayd.engine.progress import Stage as ProgressStage
from gatewayd.engine.result import NextActionDoc
from gatewayd.engine.verdict import AbortCode
from gatewayd.engine.verdict import Stage as VerdictStage

from .topics import LEVEL_PATTERN, Command

__all__ = [
    "PUBLISHED",
    "AbortNotice",
    "Availability",
    "DeviceJoinFailedEvent",
    "DeviceJoinedEvent",
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
]

Level = Annotated[str, Field(pattern=f"^{LEVEL_PATTERN}$")]
Eui64Text = Annotated[str, Field(pattern=r"^[0-9A-F]{2}(-[0-9A-F]{2}){7}$")]

# Published models: unknown keys are errors here too, so a typo in the daemon fails a test
# instead of reaching a back office. Within a schema version the keys are fixed.
PUBLISHED: Final = ConfigDict(
    extra="forbid",
    frozen=True,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
    # Published payloads always carry every key, defaults included: say so in the schema.
    json_schema_serialization_defaults_required=True,
    # Each model's serializer is built at its first use, once, not when the contract is
    # imported: `gatewayd run` is ready before it publishes anything.
    defer_build=True,
)


def new_event_id() -> str:
    """A fresh event id: a random UUID, unique across kits without coordination."""
    return str(uuid.uuid4())


def to_payload(model: BaseModel) -> bytes:
    """The bytes to publish: compact JSON, keys by their published names."""
    return model.model_dump_json(by_alias=True).encode()


def config_digest(config_bytes: bytes) -> str:
    """The ``info`` topic's ``config_digest`` of the kit config file's bytes."""
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


# --- the event envelope ---------------------------------------------------------------


class Envelope(BaseModel):
    """Fields every event carries. Subclasses pin ``schema`` to their own version."""

    model_config = PUBLISHED

    # Named schema_ in Python because BaseModel has a (deprecated) schema() method.
    schema_: str = Field(alias="schema", description="Payload kind and version")
    event_id: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per event; a resend or replay keeps it. Dedupe on it.",
    )
    session: int = Field(
        ge=0,
        description=(
            "The kit's MQTT session when the event was created: the connection's number, or "
            "while the broker is unreachable the number of the last (or, after a start, the "
            "next) connection. Found in the retained state topic too."
        ),
    )
    seq: int = Field(
        ge=1,
        description=(
            "Counts the events on this topic within this session: 1, 2, 3... A missing "
            "number is a lost event; a new session starts again at 1."
        ),
    )
    ts: AwareDatetime = Field(description="When it happened (not when it was published)")
    replayed: bool = Field(
        description=(
            "True when published later than it was created (the broker was unreachable) and "
            "for every resend; live events are false"
        )
    )


@dataclass(frozen=True, slots=True)
class StampFields:
    """The envelope values for one event, chosen by whoever sequences the topic (the outbox).

    ``fields()`` gives them as keyword arguments for any ``Envelope`` subclass.
    """

    session: int
    seq: int
    ts: datetime
    event_id: str = field(default_factory=new_event_id)
    replayed: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "session": self.session,
            "seq": self.seq,
            "ts": self.ts,
            "replayed": self.replayed,
        }


E = TypeVar("E", bound=Envelope)


def replayed(event: E) -> E:
    """The same event, marked as published late or resent (same ``event_id``)."""
    return event.model_copy(update={"replayed": True})


# --- retained status topics -------------------------------------------------------------


class Presence(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class State(BaseModel):
    """``state`` (retained): the kit's presence. The last will is ``offline`` with the session
    of the connection it was set for, so a late will of an old session is recognisable."""

    model_config = PUBLISHED

    schema_: Literal["gatewayd.state/1"] = Field(default="gatewayd.state/1", alias="schema")
    state: Presence
    session: int = Field(ge=0, description="One more for every connection, kept across restarts")


def state_payload(state: str, session: int) -> bytes:
    """The state topic's payload; fits ``MqttLink(presence=...)``."""
    return to_payload(State(state=Presence(state), session=session))


class HubPortDoc(BaseModel):
    """One hub of the kit, by its configured name. Not by its serial device: a
    ``/dev/serial/by-id/...`` path carries the adapter's serial number (``info/1`` had it)."""

    model_config = PUBLISHED

    name: Level
    baudrate: int


class Info(BaseModel):
    """``info`` (retained birth): what this kit is and can do; republished on every connect."""

    model_config = PUBLISHED

    schema_: Literal["gatewayd.info/2"] = Field(default="gatewayd.info/2", alias="schema")
    kit_id: Level
    session: int = Field(ge=0)
    ts: AwareDatetime = Field(description="When this birth was published")
    version: str = Field(description="gatewayd version")
    config_digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="Hash of the kit config file's bytes"
    )
    hubs: list[HubPortDoc]
    requests: list[Command] = Field(description="Commands answered on request/<command>")
    capabilities: list[str] = Field(description="Features this version has, e.g. 'rf_survey'")
    max_request_bytes: int = Field(description="Larger requests and notices are refused")
    dcc_notice_topics: list[str] = Field(description="Topics this kit takes DCC notices from")


class Availability(BaseModel):
    """``hubs/<hub>/availability`` (retained), published by the kit on the hub's behalf.

    Meaningful while the kit's ``state`` is ``online`` with the same ``session``: when the kit
    itself goes, this keeps its last value.
    """

    model_config = PUBLISHED

    schema_: Literal["gatewayd.availability/1"] = Field(
        default="gatewayd.availability/1", alias="schema"
    )
    hub: Level
    state: Presence
    session: int = Field(ge=0)
    ts: AwareDatetime
    reason: str | None = Field(description="Why the serial link is down, when offline")


# --- hub events -----------------------------------------------------------------------


class _HubEvent(BaseModel):
    model_config = PUBLISHED


class WanStateEvent(_HubEvent):
    kind: Literal["wan_state"] = "wan_state"
    state: str = Field(description="off, searching, registered, connected, fault")
    reg_state: str = Field(description="3GPP registration state, e.g. registered_home")
    rssi_dbm: int | None = Field(description="Null when the hub does not know")
    seconds_in_state: int
    last_dcc_contact_s: int | None = Field(description="Null when the DCC never reached the hub")
    attach_attempts: int


class HanStateEvent(_HubEvent):
    kind: Literal["han_state"] = "han_state"
    state: str = Field(description="down, up")
    channel: int
    subghz_channel: int | None = Field(description="Null on a hub with no 868 MHz channel")
    pan_id: str = Field(pattern=r"^0x[0-9A-F]{4}$")
    extended_pan_id: Eui64Text
    open_join_windows: int


class DeviceJoinedEvent(_HubEvent):
    kind: Literal["device_joined"] = "device_joined"
    eui64: Eui64Text


class DeviceJoinFailedEvent(_HubEvent):
    kind: Literal["device_join_failed"] = "device_join_failed"
    eui64: Eui64Text
    reason: str = Field(description="window_expired, key_establishment_failed")


class DeviceLostEvent(_HubEvent):
    kind: Literal["device_lost"] = "device_lost"
    eui64: Eui64Text
    reason: str = Field(description="three_lost_gsme_searches_failed")


class EsmeConnectedEvent(_HubEvent):
    kind: Literal["esme_connected"] = "esme_connected"
    eui64: Eui64Text


class EsmeDisconnectedEvent(_HubEvent):
    kind: Literal["esme_disconnected"] = "esme_disconnected"
    eui64: Eui64Text


class DeviceLogChangedEvent(_HubEvent):
    kind: Literal["device_log_changed"] = "device_log_changed"


class HubRestartedEvent(_HubEvent):
    kind: Literal["hub_restarted"] = "hub_restarted"
    reason: str = Field(description="power_on, watchdog, remote_restart")


class LinkLostEvent(_HubEvent):
    """The kit lost the hub's serial port (cable pulled, hub unpowered)."""

    kind: Literal["link_lost"] = "link_lost"
    reason: str


class HubSilentEvent(_HubEvent):
    """The hub, its port still open, stopped answering (10 s with a request waiting, or three
    requests in a row unanswered after their resends); a job running on it ends ``failed``."""

    kind: Literal["hub_silent"] = "hub_silent"
    reason: str


class LinkUpEvent(_HubEvent):
    kind: Literal["link_up"] = "link_up"
    reopened: bool = Field(description="True when the link had been lost before")


class UnknownHubEvent(_HubEvent):
    """An event code this version does not know, passed on rather than dropped."""

    kind: Literal["unknown"] = "unknown"
    code: int = Field(ge=0, le=0xFFFF)
    payload_hex: str = Field(pattern=r"^([0-9A-F]{2})*$")


HubEventBody = Annotated[
    WanStateEvent
    | HanStateEvent
    | DeviceJoinedEvent
    | DeviceJoinFailedEvent
    | DeviceLostEvent
    | EsmeConnectedEvent
    | EsmeDisconnectedEvent
    | DeviceLogChangedEvent
    | HubRestartedEvent
    | LinkLostEvent
    | HubSilentEvent
    | LinkUpEvent
    | UnknownHubEvent,
    Field(discriminator="kind"),
]


class HubEventMessage(Envelope):
    """``hubs/<hub>/events``: what the hub reported, whether or not a job runs."""

    schema_: Literal["gatewayd.hub_event/1"] = Field(default="gatewayd.hub_event/1", alias="schema")
    hub: Level
    job_id: JobId | None = Field(description="The job running on this hub then, if any")
    event: HubEventBody


# --- job events and aborts ------------------------------------------------------------


class JobEventMessage(Envelope):
    """``jobs/<job_id>/events``: one step of a job (``gatewayd.engine.progress.Progress``)."""

    schema_: Literal["gatewayd.job_event/1"] = Field(default="gatewayd.job_event/1", alias="schema")
    job_id: JobId
    hub: Level
    stage: ProgressStage
    kind: ProgressKind
    message: str = Field(description="One line for a person; do not parse it")
    elapsed_s: float = Field(ge=0, description="Site seconds since the job started")
    attempt: int | None
    wan_state: str | None
    rssi_dbm: int | None
    device: str | None = Field(description="The device this step is about (EUI-64), if any")
    data: dict[str, JsonValue] = Field(
        description="Extra facts of this step, e.g. outcome and abort on the verdict"
    )


class AbortNotice(Envelope):
    """``aborts``: one SMETS abort, for back offices that watch every job of a kit."""

    schema_: Literal["gatewayd.abort/1"] = Field(default="gatewayd.abort/1", alias="schema")
    job_id: JobId
    hub: Level
    code: AbortCode
    title: str = Field(description="The industry's words for the abort reason")
    stage: VerdictStage | None
    next_actions: list[NextActionDoc]
    result_topic: str = Field(description="Where the full result document is retained")
