"""Timers for the simulator: a cancellable scheduler in real time and the scaled site clock.

Everything the simulator does later goes through one ``Scheduler``, so ``stop()``
can cancel it all at once. The ``SiteClock`` maps the site's story (site
seconds) onto the loop's clock through the speed; protocol timers use the
scheduler directly and so always run in real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

_log = logging.getLogger(__name__)


class Scheduler:
    """``loop.call_at`` with bookkeeping: every pending handle can be cancelled at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handles: set[asyncio.TimerHandle] = set()

    def time(self) -> float:
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        def fire() -> None:
            self._handles.discard(handle)
            try:
                callback()
            except Exception:
                # One bad timer must not stop the others or the loop.
                _log.exception("simulator timer %r failed", callback)

        handle = self._loop.call_at(when, fire)
        self._handles.add(handle)
        return handle

    def call_later(self, delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self.call_at(self._loop.time() + max(0.0, delay), callback)

    def cancel(self, handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()
            self._handles.discard(handle)

    def cancel_all(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()

    @property
    def pending(self) -> int:
        return len(self._handles)


class SiteClock:
    """Site seconds since the simulator started, running ``speed`` times real time."""

    def __init__(self, scheduler: Scheduler, speed: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._scheduler = scheduler
        self.speed = speed
        self._origin = scheduler.time()

    def now(self) -> float:
        return (self._scheduler.time() - self._origin) * self.speed

    def real_delay(self, site_seconds: float) -> float:
        return site_seconds / self.speed

    def call_at(self, site_time: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self._scheduler.call_at(self._origin + site_time / self.speed, callback)

    def call_later(self, site_delay: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        return self.call_at(self.now() + max(0.0, site_delay), callback)

    def cancel(self, handle: asyncio.TimerHandle | None) -> None:
        self._scheduler.cancel(handle)
