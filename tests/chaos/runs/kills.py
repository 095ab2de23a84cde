"""Kills: jobs on eight hubs while the broker and the daemon are SIGKILLed at random moments.

Two independent agents: one SIGKILLs the daemon and starts it again a moment later, the
other SIGKILLs mosquitto and starts it again, so the kit also restarts with no broker and
loses its broker mid-replay. A job running when its daemon died may end ``failed``.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.chaos.dispatch import numbered
from tests.chaos.figures import Figures
from tests.chaos.plan import HUBS, Plan
from tests.chaos.runs.common import drive, plain_hub, rng_for, until
from tests.chaos.world import World, world

DAEMON_GAP_S = (3.0, 9.0)  # between a restart and the next kill
DAEMON_DOWN_S = (0.1, 1.5)
BROKER_GAP_S = (2.0, 7.0)
BROKER_DOWN_S = (0.2, 3.0)
PROBING_WAIT_S = 10.0


async def _kill_daemon(here: World, rng: random.Random) -> None:
    while True:
        await asyncio.sleep(rng.uniform(*DAEMON_GAP_S))
        # A kill between jobs proves little: aim at a moment when some job is in its probes.
        await until(lambda: bool(here.dispatcher.probing_hubs()), PROBING_WAIT_S)
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        await here.kill_kit()
        await asyncio.sleep(rng.uniform(*DAEMON_DOWN_S))
        await here.start_kit()


async def _kill_broker(here: World, rng: random.Random) -> None:
    while True:
        await asyncio.sleep(rng.uniform(*BROKER_GAP_S))
        await here.kill_broker()
        await asyncio.sleep(rng.uniform(*BROKER_DOWN_S))
        await here.start_broker()


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    rng = rng_for("kills", seed)
    async with world(workdir, hubs=HUBS, make_hub=plain_hub, plan=plan) as here:
        chaos = [_kill_daemon(here, random.Random(rng.random())), _kill_broker(here, rng)]
        figures = await drive(here, "kills", numbered("K", plan.kill_jobs), chaos, plan.budget_s)
        figures.chaos = {
            "daemon SIGKILLs": len(here.kit.kill_times()),
            "broker SIGKILLs": here.broker.kills,
        }
        return figures
