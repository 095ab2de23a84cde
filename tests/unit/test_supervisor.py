"""The supervisor: a failing task is restarted with backoff, counted every time, and logged
once per streak; a task that returns or is cancelled stays ended."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gatewayd.daemon.supervisor import Supervisor, Task, unsupervised
from gatewayd_drivers.backoff import BackoffSettings

FAST = BackoffSettings(first_s=0.001, max_s=0.004, factor=2.0, jitter=0.0)


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and "background task failed" in r.getMessage()
    ]


async def test_a_failing_task_is_restarted_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counted: list[Task] = []
    runs = 0
    working = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 5:
            raise OSError(28, "No space left on device")
        working.set()
        await asyncio.Event().wait()

    sup = Supervisor(on_failure=counted.append, backoff=FAST)
    with caplog.at_level(logging.DEBUG, logger="gatewayd.daemon.supervisor"):
        task = sup.spawn(Task.OUTBOX_PUMP, flaky)
        await asyncio.wait_for(working.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert counted == [Task.OUTBOX_PUMP] * 5
    assert sup.failures[Task.OUTBOX_PUMP] == 5
    lines = failure_lines(caplog)
    assert len(lines) == 1
    assert "task=outbox_pump" in lines[0] and "No space left on device" in lines[0]
    # The traceback goes with the one line.
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR)


async def test_a_new_error_is_news(caplog: pytest.LogCaptureFixture) -> None:
    errors = [OSError(28, "No space left on device")] * 3 + [OSError(5, "Input/output error")]
    done = asyncio.Event()

    async def failing() -> None:
        if errors:
            raise errors.pop(0)
        done.set()

    with caplog.at_level(logging.ERROR, logger="gatewayd.daemon.supervisor"):
        task = Supervisor(backoff=FAST).spawn(Task.HUB_EVENTS, failing, name="hub_events hub1")
        await asyncio.wait_for(done.wait(), 10)
        await task
    lines = failure_lines(caplog)
    assert len(lines) == 2
    assert "No space left" in lines[0] and "Input/output error" in lines[1]
    assert all("name='hub_events hub1'" in line for line in lines)


async def test_a_failure_after_a_healthy_run_starts_a_new_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def fails_twice() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("same error")

    # With no time needed to count as healthy, every failure is a new streak.
    sup = Supervisor(backoff=FAST, healthy_after_s=0.0)
    with caplog.at_level(logging.ERROR, logger="gatewayd.daemon.supervisor"):
        await asyncio.wait_for(sup.spawn(Task.MQTT_LINK, fails_twice), 10)
    assert len(failure_lines(caplog)) == 2


async def test_a_task_that_returns_is_not_started_again() -> None:
    calls = 0

    async def once() -> None:
        nonlocal calls
        calls += 1

    sup = Supervisor(backoff=FAST)
    await asyncio.wait_for(sup.spawn(Task.STATUS_REPORTER, once), 10)
    assert calls == 1
    assert sup.failures[Task.STATUS_REPORTER] == 0


async def test_cancelling_stops_it_during_the_backoff_wait() -> None:
    failed = asyncio.Event()

    async def broken() -> None:
        failed.set()
        raise RuntimeError("broken")

    slow = BackoffSettings(first_s=3600.0, max_s=3600.0)
    task = Supervisor(backoff=slow).spawn(Task.OUTBOX_PUMP, broken)
    await asyncio.wait_for(failed.wait(), 10)
    await asyncio.sleep(0)  # into the backoff wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_an_unsupervised_task_ends_with_its_failure() -> None:
    async def broken() -> None:
        raise RuntimeError("broken")

    task = unsupervised(Task.OUTBOX_PUMP, broken)
    with pytest.raises(RuntimeError):
        await task
    assert task.get_name() == "outbox_pump"
