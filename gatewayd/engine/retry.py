"""Retry policy and poll schedule: the one way gatewayd waits, backs off and gives up.

Flow: hub state and events -> **probe outcomes**. A probe polls the hub on a schedule that
backs off, ends a wait at once when a hub event settles the question, bounds each attempt,
and stops at a deadline. All of it runs on an injected ``Clock`` (site time).

Polls are spaced by ``gatewayd_drivers.backoff.Backoff`` (re-exported here), the same backoff the
serial link reopens with: the n-th interval has the base ``min(max_interval_s,
first_interval_s * backoff_factor ** n)``, spread by up to ``jitter`` of itself either way
and clipped to ``max_interval_s``. A wait never runs past the deadline.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatewayd.clock import Clock
from gatewayd.config.errors import RuleViolations
from gatewayd_drivers.backoff import Backoff

__all__ = [
    "AttemptTimeout",
    "Backoff",
    "PollSchedule",
    "PollSettings",
    "RetryPolicy",
    "Wake",
    "run_attempt",
]

T = TypeVar("T")


class PollSettings(BaseModel):
    """How often to poll and how long one attempt may take (the kit config's ``[poll]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_interval_s: float = Field(default=2.0, gt=0, description="Wait before the first re-poll")
    backoff_factor: float = Field(
        default=2.0, ge=1, description="Each interval is this many times the one before"
    )
    max_interval_s: float = Field(default=30.0, gt=0, description="No interval is ever longer")
    jitter: float = Field(
        default=0.1, ge=0, lt=1, description="Spread of each interval, as a fraction"
    )
    attempt_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest a single attempt (one hub exchange) may take"
    )

    @model_validator(mode="after")
    def _ceiling_above_first(self) -> Self:
        if self.max_interval_s < self.first_interval_s:
            raise RuleViolations(
                [
                    (
                        ("max_interval_s",),
                        f"{self.max_interval_s:g} s is shorter than first_interval_s "
                        f"({self.first_interval_s:g} s)",
                    )
                ]
            )
        return self


class RetryPolicy(PollSettings):
    """Poll settings plus the deadline of one stage (WAN or HAN)."""

    deadline_s: float = Field(gt=0, description="Give up this long after the stage starts")

    @classmethod
    def from_settings(cls, settings: PollSettings, deadline_s: float) -> RetryPolicy:
        return cls(**settings.model_dump(), deadline_s=deadline_s)


def _poll_backoff(settings: PollSettings, rng: random.Random | None) -> Backoff:
    return Backoff(
        settings.first_interval_s,
        settings.backoff_factor,
        settings.max_interval_s,
        settings.jitter,
        rng,
    )


class AttemptTimeout(TimeoutError):
    """One attempt took longer than its per-attempt timeout (site time)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"attempt took longer than {timeout_s:g} s")


async def run_attempt(clock: Clock, awaitable: Awaitable[T], timeout_s: float) -> T:
    """Await ``awaitable`` for at most ``timeout_s`` site seconds on ``clock``.

    Returns its result or raises its exception; on timeout cancels it and raises
    ``AttemptTimeout``.
    """
    task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
    timer: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep(timeout_s))
    racers: set[asyncio.Future[Any]] = {task, timer}
    try:
        done, _ = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise AttemptTimeout(timeout_s)


class Wake(enum.StrEnum):
    """Why ``PollSchedule.wait_next`` returned."""

    POLL = "poll"  # the interval ran out: poll the hub
    EVENT = "event"  # the wake event fired: look at what changed now
    DEADLINE = "deadline"  # the stage's time is up


class PollSchedule:
    """One stage's polling: when to poll next, when to give up, how long an attempt may take.

    The deadline counts from construction (``clock.monotonic()`` then) unless ``started_at``
    is given. The wake event is the probe's: set it when a hub event may settle the
    question; ``wait_next`` returns ``Wake.EVENT`` at once and clears it, so each setting
    ends one wait.

    The backoff step advances only after a wait that ended in ``Wake.POLL`` (a poll that
    found nothing new is what backing off is for). A wait cut short by an event starts the
    same step again with fresh jitter; call ``reset_backoff`` when the probe saw progress and
    wants to poll briskly again.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Clock,
        *,
        wake: asyncio.Event | None = None,
        rng: random.Random | None = None,
        started_at: float | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.wake = wake
        self.started_at = clock.monotonic() if started_at is None else started_at
        self.deadline_at = self.started_at + policy.deadline_s
        self._backoff = _poll_backoff(policy, rng)
        self._deadline_seen = False
        self.polls = 0
        self.events = 0
        self.attempts = 0

    def elapsed(self) -> float:
        """Site seconds since the stage started."""
        return self.clock.monotonic() - self.started_at

    def remaining(self) -> float:
        """Site seconds left before the deadline (0 once it has passed)."""
        if self._deadline_seen:
            return 0.0
        return max(0.0, self.deadline_at - self.clock.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    @property
    def backoff(self) -> Backoff:
        return self._backoff

    def reset_backoff(self) -> None:
        self._backoff.reset()

    async def wait_next(self, wake: asyncio.Event | None = None) -> Wake:
        """Wait until the next poll is due, the wake event fires, or the deadline passes.

        ``wake`` overrides the schedule's own event for this call. An event already set
        wins over everything (even a passed deadline), so a settling event is never lost.
        On ``Wake.DEADLINE`` a probe typically makes one last read to record the final state.
        """
        event = wake if wake is not None else self.wake
        if event is not None and event.is_set():
            return self._woken(event)
        remaining = self.remaining()
        if remaining <= 0.0:
            self._deadline_seen = True
            return Wake.DEADLINE
        interval = self._backoff.draw()
        hits_deadline = interval >= remaining
        wait_s = remaining if hits_deadline else interval
        if event is None:
            await self.clock.sleep(wait_s)
        elif await self.clock.wait_for_event(event, wait_s):
            return self._woken(event)
        if hits_deadline:
            # Decided from the plan, not by re-reading a real clock that may lag a hair.
            self._deadline_seen = True
            return Wake.DEADLINE
        self._backoff.advance()
        self.polls += 1
        return Wake.POLL

    def _woken(self, event: asyncio.Event) -> Wake:
        event.clear()
        self.events += 1
        return Wake.EVENT

    def attempt_timeout(self) -> float:
        return self.policy.attempt_timeout_s

    async def attempt(self, awaitable: Awaitable[T], *, timeout_s: float | None = None) -> T:
        """Run one attempt (e.g. a status read) bounded by the per-attempt timeout.

        An attempt started before the deadline may finish after it: the deadline bounds
        when attempts start, so the last read before it still completes.
        """
        self.attempts += 1
        limit = self.policy.attempt_timeout_s if timeout_s is None else timeout_s
        return await run_attempt(self.clock, awaitable, limit)
