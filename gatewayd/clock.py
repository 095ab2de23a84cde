"""The one injectable clock behind every deadline, poll interval and retry in gatewayd.

Flow: bytes -> frames -> hub state and events -> **probe outcomes** -> verdict -> publications.
The probes measure *site time* with a ``Clock``: how long the WAN took to attach, when a
deadline passed, when the next poll is due. Protocol timers of the hub link (the LSP's
250 ms / 500 ms / 1 s / 2 s) are not site time and never use this clock.

Three clocks:

- ``SystemClock``: real time, for the kit in the field.
- ``ScaledClock(speed)``: site time runs ``speed`` times faster than real time, matching a
  hub simulator's own time scale, so a 30-minute WAN deadline takes ``1800 / speed`` real
  seconds in an end-to-end test.
- ``VirtualClock``: for unit tests. Time only moves when every task is waiting on the clock,
  and then it jumps straight to the earliest pending wake-up, so an hour-long schedule runs
  in milliseconds while concurrent tasks still wake in the right order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

__all__ = ["Clock", "ScaledClock", "SystemClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    """Site time for deadlines and polls.

    ``monotonic`` and the durations given to ``sleep``/``wait_for_event`` are site seconds.
    """

    def monotonic(self) -> float:
        """Seconds of site time from an arbitrary origin; never goes backwards."""
        ...

    def wall(self) -> datetime:
        """The current date and time, timezone-aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of site time (at once for zero or less)."""
        ...

    async def wait_for_event(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait until ``event`` is set or ``timeout_s`` site seconds pass.

        Returns True when the event is set at the end of the wait (at once if it already
        was), False on timeout. The event is not cleared.
        """
        ...


class _RealTimeClock:
    """Shared body of the two clocks driven by the event loop's real timers."""

    def __init__(self, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be greater than 0, got {speed}")
        self._speed = speed
        self._real_origin = time.monotonic()
        self._wall_origin = datetime.now(UTC)

    @property
    def speed(self) -> float:
        return self._speed

    def monotonic(self) -> float:
        return (time.monotonic() - self._real_origin) * self._speed

    def wall(self) -> datetime:
        # Advancing the wall clock at the site's pace keeps finished_at - started_at equal to
        # the durations the probes report, also in a sped-up simulation.
        return self._wall_origin + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self._speed)

    async def wait_for_event(self, event: asyncio.Event, timeout_s: float) -> bool:
        if event.is_set():
            return True
        if timeout_s <= 0:
            return False
        try:
            async with asyncio.timeout(timeout_s / self._speed):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True


class SystemClock(_RealTimeClock):
    """Real time: site seconds are real seconds."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def wall(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock(_RealTimeClock):
    """Site time running ``speed`` times faster than real time (simulation only).

    ``wall()`` starts at the real date and time when the clock is made and then advances at
    the site's pace.
    """

    def __init__(self, speed: float) -> None:
        super().__init__(speed)


class VirtualClock:
    """A clock for unit tests that jumps over every wait instead of spending it.

    How time moves: each ``sleep`` or ``wait_for_event`` registers a wake-up time. A driver
    task first lets the event loop run everything that is ready (``settle_rounds`` loop
    iterations), then advances time to the earliest wake-up and fires it, and repeats until
    no wake-up is pending. So tasks that sleep concurrently wake in order of their wake-up
    times, exactly as they would in real time.

    Events set during a virtual wait: a ``wait_for_event`` ends as soon as the event is set,
    at the virtual time of the setting; it does not jump to its timeout. If another task
    sets the event after sleeping on this clock, its wake-up is earlier than the waiter's
    timeout and fires first, so the waiter returns True at that moment. When the event is
    set at the very instant the timeout falls due, the wait returns True (the event counts).

    With ``auto_advance=False`` there is no driver: time moves only when the test calls
    ``advance()``.

    Limits: time advances when the loop has had ``settle_rounds`` iterations with nothing
    left to run; work that waits on real I/O or real timers (``asyncio.sleep``, sockets,
    ptys) is invisible to the clock and gets overtaken. Use it for code whose only waiting
    is on this clock and on asyncio primitives set by such code.
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        wall_start: datetime | None = None,
        settle_rounds: int = 50,
        auto_advance: bool = True,
    ) -> None:
        if settle_rounds < 1:
            raise ValueError(f"settle_rounds must be at least 1, got {settle_rounds}")
        wall_start = wall_start or datetime(2025, 1, 1, tzinfo=UTC)
        if wall_start.tzinfo is None:
            raise ValueError("wall_start must be timezone-aware")
        self._start = start
        self._now = start
        self._wall_start = wall_start.astimezone(UTC)
        self._settle_rounds = settle_rounds
        self._auto = auto_advance
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    @property
    def pending(self) -> int:
        """Wake-ups still waiting to fire (for tests of the clock itself)."""
        return sum(1 for _, _, fut in self._timers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = self._add_timer(self._now + seconds)
        try:
            await fut
        finally:
            # A cancelled sleeper leaves a dead wake-up that the driver skips.
            fut.cancel()

    async def wait_for_event(self, event: asyncio.Event, timeout_s: float) -> bool:
        if event.is_set():
            return True
        if timeout_s <= 0:
            return False
        timer = self._add_timer(self._now + timeout_s)
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        pending: set[asyncio.Future[Any]] = {timer, waiter}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            waiter.cancel()
        return event.is_set()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every wake-up due on the way, in order.

        For a clock made with ``auto_advance=False``, in tests that want to look at the state
        at a given moment rather than run until everything is idle.
        """
        if self._auto:
            raise RuntimeError("advance() is for a VirtualClock made with auto_advance=False")
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative time ({seconds})")
        target = self._now + seconds
        await self._settle()
        while True:
            self._drop_dead()
            if not self._timers or self._timers[0][0] > target:
                break
            self._fire_next()
            await self._settle()
        self._now = max(self._now, target)
        await self._settle()

    def _add_timer(self, when: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._timers, (when, next(self._order), fut))
        if self._auto and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive(), name="virtual-clock")
        return fut

    async def _settle(self) -> None:
        for _ in range(self._settle_rounds):
            await asyncio.sleep(0)

    def _drop_dead(self) -> None:
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)

    def _fire_next(self) -> None:
        when, _, fut = heapq.heappop(self._timers)
        self._now = max(self._now, when)
        fut.set_result(None)

    async def _drive(self) -> None:
        while True:
            await self._settle()
            self._drop_dead()
            if not self._timers:
                # No await between this check and returning, so no wake-up can be added in
                # between: the next one starts a new driver.
                return
            self._fire_next()
