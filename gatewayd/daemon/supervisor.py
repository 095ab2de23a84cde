"""Background tasks that never die silently: a failure is logged once, counted, and the task
started again after a backoff.

Lifecycle side of the daemon. The daemon's long-running tasks (the outbox pump, each hub's
event forwarder, the MQTT link, the status reporter) run under one ``Supervisor``. A task
that raises is started again after a capped exponential backoff (``RESTART_BACKOFF``); every
failure is counted by task (the ``gatewayd_task_failures_total`` metric) and the first one is
logged at ERROR with its traceback. While the task keeps failing with the same error it is
not logged again, so a task that fails at every restart while a disk is full writes one
line, not one every few seconds; a different error, or a failure after the task had run
well for ``HEALTHY_AFTER_S``, is news and is logged. A task that returns has ended for good;
cancelling the task that ``spawn`` returned stops it, during a backoff wait too.

The parts that own such a task take a ``Spawn`` (``unsupervised`` when they are used on their
own, in tests and tools), so that the daemon can hand them its supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, Protocol

from gatewayd_drivers.backoff import BackoffSettings

__all__ = [
    "HEALTHY_AFTER_S",
    "RESTART_BACKOFF",
    "Spawn",
    "Supervisor",
    "Task",
    "unsupervised",
]

_log = logging.getLogger(__name__)

# Real seconds. The first restart is quick (a passing glitch), later ones back off to half a
# minute, so a task that cannot work costs next to nothing while it waits for a fix.
RESTART_BACKOFF = BackoffSettings(first_s=0.5, max_s=30.0, factor=2.0, jitter=0.2)
# A task that ran this long before failing had recovered: its failure starts a new streak
# (logged, and restarted after the shortest backoff).
HEALTHY_AFTER_S = 60.0

Runner = Callable[[], Coroutine[Any, Any, None]]


class Task(StrEnum):
    """The daemon's supervised tasks: the ``task`` label of the failure metric."""

    OUTBOX_PUMP = "outbox_pump"
    HUB_EVENTS = "hub_events"
    MQTT_LINK = "mqtt_link"
    STATUS_REPORTER = "status_reporter"


class Spawn(Protocol):
    """Start ``run()`` as the background task ``task``; ``name`` tells instances apart."""

    def __call__(
        self, task: Task, run: Runner, *, name: str | None = None
    ) -> asyncio.Task[None]: ...


def unsupervised(task: Task, run: Runner, *, name: str | None = None) -> asyncio.Task[None]:
    """A plain task, for a part used on its own: a failure ends it."""
    return asyncio.create_task(run(), name=name or task.value)


def _ignore(_task: Task) -> None:
    return None


class Supervisor:
    """Runs background tasks and starts each again when it fails (see the module docstring)."""

    def __init__(
        self,
        *,
        on_failure: Callable[[Task], None] = _ignore,
        backoff: BackoffSettings = RESTART_BACKOFF,
        healthy_after_s: float = HEALTHY_AFTER_S,
        rng: random.Random | None = None,
    ) -> None:
        self._on_failure = on_failure
        self._backoff = backoff
        self._healthy_after_s = healthy_after_s
        self._rng = rng
        self.failures: dict[Task, int] = dict.fromkeys(Task, 0)

    def spawn(self, task: Task, run: Runner, *, name: str | None = None) -> asyncio.Task[None]:
        label = name or task.value
        return asyncio.create_task(self._keep(task, label, run), name=label)

    async def _keep(self, task: Task, name: str, run: Runner) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff.start(self._rng)
        logged: str | None = None  # the error of the current streak, once it was logged
        while True:
            began = loop.time()
            try:
                await run()
                return
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if loop.time() - began >= self._healthy_after_s:
                    backoff.reset()
                    logged = None
                delay = backoff.next_delay()
                self.failures[task] += 1
                self._on_failure(task)
                if error != logged:
                    logged = error
                    _log.error(
                        "background task failed, restarting it task=%s name=%r error=%r "
                        "restart_in_s=%.1f",
                        task.value,
                        name,
                        error,
                        delay,
                        exc_info=exc,
                    )
                else:
                    _log.debug(
                        "background task failed again task=%s name=%r restart_in_s=%.1f",
                        task.value,
                        name,
                        delay,
                    )
            await asyncio.sleep(delay)
