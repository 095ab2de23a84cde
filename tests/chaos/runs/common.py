"""What every chaos run shares: plain hubs, the dispatch loop with its budget, the ending.

``drive`` runs one job worker per hub beside the run's own chaos tasks, stops them at the
budget, settles the world and counts the figures, so each run module only says what it
does to the kit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import Scenario
from tests.chaos.figures import Figures
from tests.chaos.kit import SPEED
from tests.chaos.world import World

POLL_S = 0.05  # how often a chaos task looks for a hub in the state it wants


def plain_hub(scenario: Scenario, link: Path, index: int) -> HubSimulator:
    return HubSimulator(scenario, link, speed=SPEED)


def rng_for(run: str, seed: int) -> random.Random:
    return random.Random(f"{seed}:{run}")


async def drive(
    here: World,
    name: str,
    job_ids: Callable[[], str | None],
    chaos: list[Coroutine[Any, Any, None]],
    budget_s: float,
) -> Figures:
    """Jobs on every hub and the chaos beside them, until the jobs run out or the budget."""
    workers = [
        asyncio.create_task(here.dispatcher.run_hub(slot, job_ids), name=f"jobs {slot.name}")
        for slot in here.hubs
    ]
    agents = [asyncio.create_task(c, name=f"chaos {name}") for c in chaos]
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget_s):
                await asyncio.gather(*workers)
    finally:
        for task in [*agents, *workers]:
            task.cancel()
        for task in [*agents, *workers]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await here.settle()
    return here.figures(name)


async def until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Wait (bounded) for a condition of the world that offers no event to wait on."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(POLL_S)
            return True
    return False
