"""Kills: jobs on eight hubs while the broker and the daemon are SIGKILLed at random moments.

Two independent agents: one SIGKILLs the daemon and starts it again a moment later, the
other SIGKILLs mosquitto and starts it again, so the kit also restarts with no broker and
loses its broker mid-replay. Jobs go on until the planned jobs are done and every planned
kill is made. A job running when its daemon died may end ``failed``.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.chaos.dispatch import JobIds, numbered
from tests.chaos.figures import Figures
from tests.chaos.plan import HUBS, Plan
from tests.chaos.runs.common import drive, plain_hub, rng_for, until
from tests.chaos.world import World, world

DAEMON_GAP_S = (1.5, 5.0)  # between a restart and the next kill
DAEMON_DOWN_S = (0.1, 1.5)
BROKER_GAP_S = (1.0, 4.0)
BROKER_DOWN_S = (0.2, 3.0)
PROBING_WAIT_S = 10.0
MAX_JOBS = 5  # times the planned jobs: the bound when the kills are slow to come


async def _kill_daemon(here: World, rng: random.Random, kills: int, done: asyncio.Event) -> None:
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(*DAEMON_GAP_S))
        # A kill between jobs proves little: aim at a moment when some job is in its probes.
        await until(lambda: bool(here.dispatcher.probing_hubs()), PROBING_WAIT_S)
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        await here.kill_kit()
        await asyncio.sleep(rng.uniform(*DAEMON_DOWN_S))
        await here.start_kit()
    done.set()


async def _kill_broker(here: World, rng: random.Random, kills: int, done: asyncio.Event) -> None:
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(*BROKER_GAP_S))
        await here.kill_broker()
        await asyncio.sleep(rng.uniform(*BROKER_DOWN_S))
        await here.start_broker()
    done.set()


def _jobs(plan: Plan, daemon_done: asyncio.Event, broker_done: asyncio.Event) -> JobIds:
    """The planned jobs, and more until every planned kill is made (bounded)."""
    ids = numbered("K", MAX_JOBS * plan.kill_jobs)
    given = 0

    def next_id() -> str | None:
        nonlocal given
        if given >= plan.kill_jobs and daemon_done.is_set() and broker_done.is_set():
            return None
        given += 1
        return ids()

    return next_id


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    rng = rng_for("kills", seed)
    daemon_done, broker_done = asyncio.Event(), asyncio.Event()
    async with world(workdir, hubs=HUBS, make_hub=plain_hub, plan=plan) as here:
        chaos = [
            _kill_daemon(here, random.Random(rng.random()), plan.kills, daemon_done),
            _kill_broker(here, rng, plan.kills, broker_done),
        ]
        jobs = _jobs(plan, daemon_done, broker_done)
        figures = await drive(here, "kills", jobs, chaos, plan.budget_s)
        figures.chaos = {
            "daemon SIGKILLs": len(here.kit.kill_times()),
            "broker SIGKILLs": here.broker.kills,
        }
        return figures
