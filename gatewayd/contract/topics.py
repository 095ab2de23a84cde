"""Topic names of the MQTT contract: every topic the kit publishes to or listens on.

Publications side of the flow. Topics are built here and nowhere else; a test holds them to
the channel table in ``gatewayd.contract.channels`` that the docs and the AsyncAPI document
are generated from, so the daemon's topics and the documented ones cannot drift apart. Every
variable level (kit id, hub name, job id, command, region) is checked to be one safe topic
level: a job id such as ``a/b`` or ``#`` would otherwise publish somewhere else or turn a
subscription into a wildcard. Job ids follow the job model's stricter rule
(``gatewayd.config.job.check_job_id``), as they also name files.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gatewayd.config.job import JOB_ID_PATTERN, check_job_id
from gatewayd.config.mqtt import RESERVED_KIT_IDS

__all__ = [
    "DEFAULT_PREFIX",
    "JOB_ID_PATTERN",
    "LEVEL_PATTERN",
    "RESERVED_KIT_IDS",
    "Command",
    "NoticeTopic",
    "Region",
    "RequestTopic",
    "TopicError",
    "Topics",
    "validate_job_id",
    "validate_level",
    "validate_prefix",
]

DEFAULT_PREFIX: Final = "gatewayd"

# The characters allowed in a variable topic level. Narrower than MQTT needs (which only
# bans '/', '+', '#' and NUL), on purpose: the same names end up in file names, metric labels
# and log lines, where spaces, '$' and non-ASCII cause their own trouble.
LEVEL_PATTERN: Final = r"[A-Za-z0-9._-]{1,64}"
_LEVEL = re.compile(LEVEL_PATTERN)


class TopicError(ValueError):
    """A name that cannot be a topic level, or a prefix that cannot start a topic."""


class Command(enum.StrEnum):
    """The requests a kit answers on ``request/<command>`` -> ``response/<command>``."""

    START_JOB = "start_job"
    CANCEL_JOB = "cancel_job"
    STATUS = "status"
    REBIRTH = "rebirth"
    SURVEY = "survey"


class Region(enum.StrEnum):
    """The DCC's Communication Service Provider regions (the hub's ``csp_region``)."""

    NORTH = "north"
    CENTRAL = "central"
    SOUTH = "south"


def validate_level(value: object, what: str) -> str:
    """``value`` if it is one safe topic level; ``TopicError`` naming ``what`` otherwise."""
    if not isinstance(value, str):
        raise TopicError(f"{what} must be a string, got {type(value).__name__}")
    # fullmatch, not match with '$': '$' also matches before a trailing newline.
    if _LEVEL.fullmatch(value) is None:
        raise TopicError(
            f"{what} {value!r} must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' "
            "and '-' (it becomes one MQTT topic level)"
        )
    return value


def validate_job_id(value: object, what: str = "job_id") -> str:
    """``value`` if it is a safe job id (a topic level and a file name); ``TopicError`` naming
    ``what`` otherwise."""
    try:
        return check_job_id(value)
    except ValueError as exc:
        raise TopicError(f"{what}: {exc}") from None


def is_safe_level(value: str) -> bool:
    """Whether ``value`` may be one MQTT topic level (see ``validate_level``)."""
    return _LEVEL.fullmatch(value) is not None


def validate_prefix(prefix: str) -> str:
    """A prefix is one or more safe levels joined by '/' (no leading, trailing or empty level)."""
    if not isinstance(prefix, str) or not prefix:
        raise TopicError("the topic prefix must be a non-empty string")
    for level in prefix.split("/"):
        validate_level(level, f"topic prefix {prefix!r}: level")
    return prefix


@dataclass(frozen=True, slots=True)
class RequestTopic:
    """An incoming message on ``request/<command>``; ``command`` may be one we do not know."""

    command: str


@dataclass(frozen=True, slots=True)
class NoticeTopic:
    """An incoming DCC notice: ``region`` is None on the kit's own notice topic."""

    region: Region | None


class Topics:
    """Every topic of one kit: ``<prefix>/<kit_id>/...`` plus the fleet's region topics."""

    def __init__(self, kit_id: str, prefix: str = DEFAULT_PREFIX) -> None:
        validate_level(kit_id, "kit_id")
        if kit_id in RESERVED_KIT_IDS:
            raise TopicError(
                f"kit_id {kit_id!r} is reserved for fleet-wide topics "
                f"({', '.join(sorted(RESERVED_KIT_IDS))})"
            )
        self.prefix = validate_prefix(prefix)
        self.kit_id = kit_id
        self.base = f"{prefix}/{kit_id}"

    def __repr__(self) -> str:
        return f"Topics(kit_id={self.kit_id!r}, prefix={self.prefix!r})"

    # --- what the kit publishes -------------------------------------------------------

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def info(self) -> str:
        return f"{self.base}/info"

    def hub_availability(self, hub: str) -> str:
        return f"{self.base}/hubs/{validate_level(hub, 'hub')}/availability"

    def hub_events(self, hub: str) -> str:
        return f"{self.base}/hubs/{validate_level(hub, 'hub')}/events"

    def job_events(self, job_id: str) -> str:
        return f"{self.base}/jobs/{validate_job_id(job_id)}/events"

    def job_result(self, job_id: str) -> str:
        return f"{self.base}/jobs/{validate_job_id(job_id)}/result"

    @property
    def survey(self) -> str:
        return f"{self.base}/survey"

    @property
    def aborts(self) -> str:
        return f"{self.base}/aborts"

    def response(self, command: str) -> str:
        return f"{self.base}/response/{validate_level(command, 'command')}"

    @property
    def request_errors(self) -> str:
        """Where a request on ``request/<command>`` is answered when ``<command>`` is no safe
        topic level, so it has no ``response/<command>`` of its own."""
        return f"{self.base}/request_errors"

    # --- what the kit listens on ------------------------------------------------------

    def request(self, command: str) -> str:
        return f"{self.base}/request/{validate_level(command, 'command')}"

    @property
    def dcc_notice(self) -> str:
        return f"{self.base}/dcc/notice"

    def region_dcc_notice(self, region: Region | str) -> str:
        return f"{self.prefix}/region/{Region(region).value}/dcc/notice"

    @property
    def request_filter(self) -> str:
        # Every command, known or not: an unknown one still gets an error response.
        return f"{self.base}/request/+"

    def dcc_notice_filters(self, regions: Iterable[Region | str] | None = None) -> tuple[str, ...]:
        """The kit's own notice topic and its regions' (all regions when ``None``).

        A kit learns its region from its hub; until then (or with hubs in several regions)
        it listens to every region and keeps only the notices that name its jobs or sites.
        """
        if regions is None:
            return (self.dcc_notice, f"{self.prefix}/region/+/dcc/notice")
        chosen = sorted({Region(r) for r in regions})
        return (self.dcc_notice, *(self.region_dcc_notice(r) for r in chosen))

    def subscriptions(self, regions: Iterable[Region | str] | None = None) -> tuple[str, ...]:
        """Every filter the kit subscribes to."""
        return (self.request_filter, *self.dcc_notice_filters(regions))

    def match(self, topic: str) -> RequestTopic | NoticeTopic | None:
        """What an incoming topic is, or None when it is none of ours."""
        request_head = f"{self.base}/request/"
        if topic.startswith(request_head):
            command = topic[len(request_head) :]
            if command and "/" not in command:
                return RequestTopic(command)
            return None
        if topic == self.dcc_notice:
            return NoticeTopic(None)
        head, tail = f"{self.prefix}/region/", "/dcc/notice"
        if topic.startswith(head) and topic.endswith(tail):
            name = topic[len(head) : len(topic) - len(tail)]
            try:
                return NoticeTopic(Region(name))
            except ValueError:
                return None
        return None
