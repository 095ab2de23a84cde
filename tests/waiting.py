"""Waiting in tests for a condition to hold, instead of sleeping for a guessed time.

A fixed sleep is either too short on a loaded machine (a flaky failure) or longer than
needed everywhere else. Most of what the tests wait for (a counter, a flag, a file) has no
event to await, so this polls the condition often, up to a generous deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_S = 0.005

# How late, at most, a timer may fire or an answer come on a machine whose cores are all busy
# (./dev.sh test-under-load). A test of a protocol timer holds it to "not early" exactly, and
# to "not late" only within this: load delays everything and hurries nothing.
LATE_S = 2.0


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return as soon as ``check()`` is true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(POLL_S)
