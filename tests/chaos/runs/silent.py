"""Silent hub: a hub stops answering mid-probe, its port still open (a firmware hang).

At random moments while a job probes, one hub goes silent: for good (the installer then
swaps it for a fresh one), for longer than the domain's 10 s, or for a moment. A job on a
hub silent past 10 s must end ``failed`` with nothing else: neither an abort nor a success
may rest on a silence. After a short one the job may end with its site's verdict or
``failed``. The other hubs' jobs must not notice.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.chaos.dispatch import numbered
from tests.chaos.figures import Figures
from tests.chaos.hubs import Slot
from tests.chaos.kit import SPEED
from tests.chaos.plan import HUBS, Plan
from tests.chaos.runs.common import drive, plain_hub, rng_for, until
from tests.chaos.verdicts import SILENT_HUB_S
from tests.chaos.world import World, world

KINDS: dict[str, float | None] = {  # real seconds of silence; None: for good
    "for good": None,
    "past 10 s": SILENT_HUB_S + 2.0,
    "a moment": 1.5,
}
GAP_S = (0.5, 3.0)
PROBING_WAIT_S = 20.0
RESULT_WAIT_S = 60.0  # a silent job's stage deadline, then the 10 s of the rule


async def _silence(
    here: World, rng: random.Random, count: int, made: dict[str, float], done: asyncio.Event
) -> None:
    try:
        await _silences(here, rng, count, made)
    finally:
        done.set()


async def _silences(here: World, rng: random.Random, count: int, made: dict[str, float]) -> None:
    slots = {slot.name: slot for slot in here.hubs}
    swaps: list[asyncio.Task[None]] = []
    kinds = [list(KINDS)[i % len(KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    for kind in kinds:
        await asyncio.sleep(rng.uniform(*GAP_S))

        def targets() -> list[str]:
            return [
                h
                for h in here.dispatcher.probing_hubs()
                if not slots[h].sim.silent and slots[h].ready.is_set()
            ]

        if not await until(lambda: bool(targets()), PROBING_WAIT_S):
            return
        slot = slots[rng.choice(sorted(targets()))]
        record = here.dispatcher.current[slot.name]
        real_s = KINDS[kind]
        slot.sim.go_silent(None if real_s is None else real_s * SPEED)
        made[kind] = made.get(kind, 0) + 1
        if real_s is None:
            # No job may start on a dead hub before it is swapped: wait out this one.
            slot.ready.clear()
            swaps.append(asyncio.create_task(_swap_after(here, slot, record.job_id)))
    if swaps:
        try:
            await asyncio.wait(swaps)
        finally:
            for task in swaps:
                task.cancel()


async def _swap_after(here: World, slot: Slot, job_id: str) -> None:
    try:
        async with asyncio.timeout(RESULT_WAIT_S):
            await here.tracker.view(job_id).result.wait()
    except TimeoutError:
        pass
    finally:
        await here.hubs.replace(slot)
        slot.ready.set()


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    rng = rng_for("silent", seed)
    made: dict[str, float] = {}
    done = asyncio.Event()
    async with world(workdir, hubs=HUBS, make_hub=plain_hub, plan=plan) as here:
        chaos = [_silence(here, rng, plan.silences, made, done)]
        jobs = numbered("S", plan.silent_jobs, done)
        figures = await drive(here, "silent", jobs, chaos, plan.budget_s)
        figures.chaos = {f"silent {kind}": n for kind, n in made.items()}
        return figures
