"""Retry policy and poll schedule, on the virtual clock."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gatewayd.clock import VirtualClock
from gatewayd.engine.retry import (
    AttemptTimeout,
    Backoff,
    PollSchedule,
    PollSettings,
    RetryPolicy,
    Wake,
    run_attempt,
)


def policy(**overrides: float) -> RetryPolicy:
    values: dict[str, float] = {
        "deadline_s": 120.0,
        "first_interval_s": 2.0,
        "backoff_factor": 2.0,
        "max_interval_s": 16.0,
        "jitter": 0.0,
        "attempt_timeout_s": 5.0,
    }
    values.update(overrides)
    return RetryPolicy.model_validate(values)


# --- the model ---------------------------------------------------------------------


def test_defaults_are_sane() -> None:
    s = PollSettings()
    assert 0 < s.first_interval_s <= s.max_interval_s
    assert s.backoff_factor >= 1
    assert 0 <= s.jitter < 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_interval_s", 0),
        ("backoff_factor", 0.5),
        ("max_interval_s", -1),
        ("jitter", 1.0),
        ("jitter", -0.1),
        ("attempt_timeout_s", 0),
        ("deadline_s", 0),
    ],
)
def test_out_of_range_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        policy(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_ceiling_below_first_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="shorter than first_interval_s"):
        policy(first_interval_s=10, max_interval_s=5)


def test_policy_from_settings_keeps_the_settings() -> None:
    s = PollSettings(first_interval_s=3, max_interval_s=9)
    p = RetryPolicy.from_settings(s, deadline_s=60)
    assert (p.first_interval_s, p.max_interval_s, p.deadline_s) == (3, 9, 60)


# --- backoff -----------------------------------------------------------------------


def test_backoff_without_jitter_doubles_then_caps() -> None:
    b = Backoff(2, 2, 16, 0)
    assert [b.next_delay() for _ in range(6)] == [2, 4, 8, 16, 16, 16]
    b.reset()
    assert b.next_delay() == 2


def test_backoff_with_factor_one_is_a_fixed_interval() -> None:
    b = Backoff(5, 1, 60, 0)
    assert {b.next_delay() for _ in range(10)} == {5}


def test_backoff_survives_a_very_long_run() -> None:
    b = Backoff(1, 10, 30, 0)
    for _ in range(5000):
        b.next_delay()
    assert b.base == 30


@settings(max_examples=200)
@given(
    first=st.floats(0.01, 100),
    factor=st.floats(1, 5),
    ceiling_over_first=st.floats(1, 100),
    jitter=st.floats(0, 0.99),
    seed=st.integers(0, 2**32),
)
def test_jittered_delays_stay_within_the_spread_and_never_pass_the_ceiling(
    first: float, factor: float, ceiling_over_first: float, jitter: float, seed: int
) -> None:
    ceiling = first * ceiling_over_first
    b = Backoff(first, factor, ceiling, jitter, random.Random(seed))
    for _ in range(20):
        base = b.base
        delay = b.next_delay()
        assert base * (1 - jitter) - 1e-9 <= delay <= min(ceiling, base * (1 + jitter)) + 1e-9
        assert delay > 0


def test_same_seed_same_schedule_and_jitter_actually_varies() -> None:
    def delays(seed: int) -> list[float]:
        b = Backoff(2, 2, 30, 0.3, random.Random(seed))
        return [b.next_delay() for _ in range(8)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 2, 10, 0), "first interval"),
        ((1, 0.9, 10, 0), "factor"),
        ((5, 2, 1, 0), "below the first"),
        ((1, 2, 10, 1), "jitter"),
    ],
)
def test_backoff_rejects_bad_arguments(args: tuple[float, float, float, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Backoff(*args)


# --- the poll schedule -------------------------------------------------------------


async def test_polls_back_off_until_the_deadline() -> None:
    clock = VirtualClock()
    sched = PollSchedule(policy(deadline_s=40), clock)
    seen: list[tuple[Wake, float]] = []
    while True:
        wake = await sched.wait_next()
        seen.append((wake, clock.monotonic()))
        if wake is Wake.DEADLINE:
            break
    # 2, 4, 8, 16 -> polls at 2, 6, 14, 30; the next 16 would pass 40, so stop at 40.
    assert seen == [
        (Wake.POLL, 2.0),
        (Wake.POLL, 6.0),
        (Wake.POLL, 14.0),
        (Wake.POLL, 30.0),
        (Wake.DEADLINE, 40.0),
    ]
    assert sched.polls == 4
    assert sched.expired
    assert sched.remaining() == 0.0
    assert await sched.wait_next() is Wake.DEADLINE


async def test_remaining_and_elapsed_follow_the_clock() -> None:
    clock = VirtualClock(start=1000)
    sched = PollSchedule(policy(deadline_s=60), clock)
    await clock.sleep(25)
    assert sched.elapsed() == 25
    assert sched.remaining() == 35
    assert not sched.expired


async def test_a_wake_event_ends_the_wait_at_once_and_is_consumed() -> None:
    clock = VirtualClock()
    wake = asyncio.Event()
    sched = PollSchedule(policy(first_interval_s=10, max_interval_s=10), clock, wake=wake)

    async def hub_event_at(t: float) -> None:
        await clock.sleep(t)
        wake.set()

    task = asyncio.create_task(hub_event_at(3))
    assert await sched.wait_next() is Wake.EVENT
    assert clock.monotonic() == 3.0
    assert not wake.is_set()
    await task
    # The event does not carry over: the next wait is a full interval.
    assert await sched.wait_next() is Wake.POLL
    assert clock.monotonic() == 13.0
    assert (sched.events, sched.polls) == (1, 1)


async def test_an_event_before_the_wait_returns_without_waiting_even_past_the_deadline() -> None:
    clock = VirtualClock()
    wake = asyncio.Event()
    sched = PollSchedule(policy(deadline_s=5), clock, wake=wake)
    await clock.sleep(10)
    wake.set()
    assert await sched.wait_next() is Wake.EVENT
    assert await sched.wait_next() is Wake.DEADLINE


async def test_an_event_keeps_the_backoff_step_a_poll_advances_it() -> None:
    clock = VirtualClock()
    wake = asyncio.Event()
    sched = PollSchedule(policy(), clock)
    assert await sched.wait_next(wake) is Wake.POLL  # 2 s
    wake.set()
    assert await sched.wait_next(wake) is Wake.EVENT
    assert sched.backoff.base == 4
    assert await sched.wait_next(wake) is Wake.POLL  # 4 s
    assert clock.monotonic() == 6.0
    sched.reset_backoff()
    assert await sched.wait_next(wake) is Wake.POLL
    assert clock.monotonic() == 8.0


async def test_deadline_counts_from_started_at_when_given() -> None:
    clock = VirtualClock(start=50)
    sched = PollSchedule(policy(deadline_s=60), clock, started_at=20)
    assert sched.remaining() == 30


async def test_attempt_returns_the_result_within_the_timeout() -> None:
    clock = VirtualClock()
    sched = PollSchedule(policy(attempt_timeout_s=5), clock)

    async def quick() -> str:
        await clock.sleep(1)
        return "status"

    assert await sched.attempt(quick()) == "status"
    assert clock.monotonic() == 1.0
    assert sched.attempts == 1


async def test_attempt_times_out_on_the_clock_and_cancels_the_work() -> None:
    clock = VirtualClock()
    sched = PollSchedule(policy(attempt_timeout_s=5), clock)
    cancelled = asyncio.Event()

    async def hangs() -> str:
        try:
            await clock.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    with pytest.raises(AttemptTimeout) as info:
        await sched.attempt(hangs())
    assert info.value.timeout_s == 5
    assert isinstance(info.value, TimeoutError)
    assert clock.monotonic() == 5.0
    await asyncio.wait_for(cancelled.wait(), 5)  # the hung attempt really is cancelled


async def test_attempt_passes_the_attempts_own_error_through() -> None:
    clock = VirtualClock()

    async def broken() -> int:
        raise ConnectionError("hub unplugged")

    with pytest.raises(ConnectionError, match="unplugged"):
        await run_attempt(clock, broken(), 5)


async def test_attempt_timeout_can_be_overridden_per_call() -> None:
    clock = VirtualClock()
    sched = PollSchedule(policy(attempt_timeout_s=5), clock)
    with pytest.raises(AttemptTimeout):
        await sched.attempt(clock.sleep(100), timeout_s=2)
    assert clock.monotonic() == 2.0


async def test_jittered_schedule_is_reproducible_with_a_seeded_rng() -> None:
    async def run(seed: int) -> list[float]:
        clock = VirtualClock()
        sched = PollSchedule(policy(jitter=0.5), clock, rng=random.Random(seed))
        times = []
        while await sched.wait_next() is Wake.POLL:
            times.append(clock.monotonic())
        return times

    first = await run(3)
    assert first == await run(3)
    assert first != await run(4)
    assert all(b > a for a, b in itertools.pairwise(first))
