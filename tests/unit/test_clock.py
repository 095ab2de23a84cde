"""The injectable clocks: virtual time ordering and events, scaled and system time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from gatewayd.clock import Clock, ScaledClock, SystemClock, VirtualClock


def test_every_clock_satisfies_the_protocol() -> None:
    for clock in (SystemClock(), ScaledClock(10), VirtualClock()):
        assert isinstance(clock, Clock)


# --- VirtualClock ------------------------------------------------------------------


async def test_virtual_sleep_jumps_an_hour_in_no_real_time() -> None:
    clock = VirtualClock(start=100.0)
    real_start = time.monotonic()
    await clock.sleep(3600)
    assert clock.monotonic() == pytest.approx(3700.0)
    assert time.monotonic() - real_start < 1.0


async def test_virtual_wall_follows_virtual_time() -> None:
    start = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
    clock = VirtualClock(wall_start=start)
    await clock.sleep(90)
    assert clock.wall() == start + timedelta(seconds=90)
    assert clock.wall().tzinfo is not None


def test_virtual_clock_refuses_a_naive_wall_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(wall_start=datetime(2025, 1, 1))


async def test_concurrent_sleepers_wake_in_order_of_their_wake_up_times() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    await asyncio.gather(sleeper("late", 30), sleeper("early", 5), sleeper("middle", 12))
    assert woke == [("early", 5.0), ("middle", 12.0), ("late", 30.0)]


async def test_sleep_chains_add_up_per_task_not_across_tasks() -> None:
    clock = VirtualClock()

    async def two_sleeps(a: float, b: float) -> float:
        await clock.sleep(a)
        await clock.sleep(b)
        return clock.monotonic()

    ends = await asyncio.gather(two_sleeps(10, 10), two_sleeps(5, 30))
    assert list(ends) == [20.0, 35.0]


async def test_event_set_by_another_task_ends_the_wait_at_the_setters_time() -> None:
    clock = VirtualClock()
    event = asyncio.Event()

    async def setter() -> None:
        await clock.sleep(7)
        event.set()

    task = asyncio.create_task(setter())
    fired = await clock.wait_for_event(event, 600)
    await task
    assert fired is True
    assert clock.monotonic() == 7.0


async def test_event_set_without_any_clock_wait_wakes_the_waiter_at_once() -> None:
    clock = VirtualClock()
    event = asyncio.Event()

    async def setter() -> None:
        await asyncio.sleep(0)
        event.set()

    task = asyncio.create_task(setter())
    assert await clock.wait_for_event(event, 600) is True
    await task
    assert clock.monotonic() == 0.0


async def test_wait_for_event_times_out_at_exactly_the_timeout() -> None:
    clock = VirtualClock()
    event = asyncio.Event()
    assert await clock.wait_for_event(event, 45) is False
    assert clock.monotonic() == 45.0
    assert clock.pending == 0


async def test_event_set_after_the_timeout_is_not_seen() -> None:
    clock = VirtualClock()
    event = asyncio.Event()

    async def late_setter() -> None:
        await clock.sleep(50)
        event.set()

    task = asyncio.create_task(late_setter())
    assert await clock.wait_for_event(event, 20) is False
    assert clock.monotonic() == 20.0
    await task
    assert clock.monotonic() == 50.0


async def test_event_set_at_the_instant_of_the_timeout_counts() -> None:
    clock = VirtualClock()
    event = asyncio.Event()

    async def setter() -> None:
        await clock.sleep(20)
        event.set()

    task = asyncio.create_task(setter())
    # The setter's wake-up was registered first, so it fires first at t=20.
    await asyncio.sleep(0)
    assert await clock.wait_for_event(event, 20) is True
    await task


async def test_an_already_set_event_returns_true_without_time_passing() -> None:
    clock = VirtualClock()
    event = asyncio.Event()
    event.set()
    assert await clock.wait_for_event(event, 10) is True
    assert await clock.wait_for_event(event, 0) is True
    assert clock.monotonic() == 0.0


async def test_zero_timeout_on_an_unset_event_is_false_at_once() -> None:
    clock = VirtualClock()
    assert await clock.wait_for_event(asyncio.Event(), 0) is False
    assert clock.monotonic() == 0.0


async def test_a_cancelled_sleeper_does_not_move_time() -> None:
    clock = VirtualClock()
    task = asyncio.create_task(clock.sleep(1000))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await clock.sleep(3)
    assert clock.monotonic() == 3.0


async def test_manual_advance_fires_only_what_is_due() -> None:
    clock = VirtualClock(auto_advance=False)
    woke: list[float] = []

    async def sleeper(s: float) -> None:
        await clock.sleep(s)
        woke.append(clock.monotonic())

    tasks = [asyncio.create_task(sleeper(s)) for s in (5, 15)]
    await clock.advance(10)
    assert woke == [5.0]
    assert clock.monotonic() == 10.0
    await clock.advance(10)
    assert woke == [5.0, 15.0]
    assert clock.monotonic() == 20.0
    await asyncio.gather(*tasks)


async def test_advance_is_refused_on_an_auto_advancing_clock() -> None:
    with pytest.raises(RuntimeError, match="auto_advance=False"):
        await VirtualClock().advance(1)


# --- real-time clocks --------------------------------------------------------------


async def test_scaled_clock_runs_site_time_faster() -> None:
    clock = ScaledClock(200)
    site_start = clock.monotonic()
    real_start = time.monotonic()
    await clock.sleep(20)  # 0.1 s of real time
    real = time.monotonic() - real_start
    assert 0.08 <= real < 1.0
    assert clock.monotonic() - site_start >= 19.0


async def test_scaled_clock_wait_times_out_in_scaled_time() -> None:
    clock = ScaledClock(100)
    real_start = time.monotonic()
    assert await clock.wait_for_event(asyncio.Event(), 10) is False
    assert 0.08 <= time.monotonic() - real_start < 1.0


async def test_scaled_clock_wall_advances_at_site_pace() -> None:
    clock = ScaledClock(1000)
    before = clock.wall()
    await asyncio.sleep(0.05)  # real time passing is the thing under test
    assert clock.wall() - before >= timedelta(seconds=40)


def test_scaled_clock_rejects_a_speed_of_zero() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        ScaledClock(0)


async def test_system_clock_wait_returns_when_the_event_fires() -> None:
    clock = SystemClock()
    event = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, event.set)
    real_start = time.monotonic()
    assert await clock.wait_for_event(event, 5) is True
    assert time.monotonic() - real_start < 1.0


async def test_system_clock_wait_times_out() -> None:
    assert await SystemClock().wait_for_event(asyncio.Event(), 0.02) is False


def test_system_clock_wall_is_aware_utc() -> None:
    now = SystemClock().wall()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)
