"""Pulls: cable pulls at random moments while jobs are in their WAN or HAN probes.

Each pull picks a hub whose job is probing and unplugs its port for a random time, from a
blink to longer than a HAN join window. The job must still reach its site's verdict; one
whose stage deadline passes with the cable out may end ``failed`` instead.
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

OUT_S = (0.05, 2.5)  # real seconds with the cable out (1 real s is 50 site s)
GAP_S = (0.05, 0.6)
PROBING_WAIT_S = 20.0
MAX_JOBS_PER_PULL = 6  # bound: the jobs stop even if the pulls cannot all be made


async def _pull(here: World, rng: random.Random, pulls: int, done: asyncio.Event) -> None:
    slots = {slot.name: slot for slot in here.hubs}
    made = 0
    while made < pulls:
        await asyncio.sleep(rng.uniform(*GAP_S))

        def targets() -> list[str]:
            return [h for h in here.dispatcher.probing_hubs() if slots[h].sim.plugged]

        if not await until(lambda: bool(targets()), PROBING_WAIT_S):
            break
        slot = slots[rng.choice(sorted(targets()))]
        slot.sim.pull_cable(rng.uniform(*OUT_S))
        made += 1
    done.set()


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    rng = rng_for("pulls", seed)
    done = asyncio.Event()
    async with world(workdir, hubs=HUBS, make_hub=plain_hub, plan=plan) as here:
        jobs = numbered("P", MAX_JOBS_PER_PULL * plan.pulls, done)
        chaos = [_pull(here, rng, plan.pulls, done)]
        figures = await drive(here, "pulls", jobs, chaos, plan.budget_s)
        figures.chaos = {
            "cable pulls": sum(len(sim.cable_pulls) for slot in here.hubs for sim, _ in slot.sims)
        }
        return figures
