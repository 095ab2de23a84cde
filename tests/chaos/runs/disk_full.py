"""Disk full: the kit's state directory fills up mid-run, stays full a while, then frees.

The state directory is a small tmpfs of its own. Jobs run calmly first; then a filler file
takes every free byte while jobs go on starting and ending, and is removed again. Every job
the kit took must get its one result with its site's verdict, and every event must arrive,
whether or not it could be written to disk.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.chaos import disk
from tests.chaos.dispatch import numbered
from tests.chaos.figures import Figures
from tests.chaos.plan import HUBS, Plan
from tests.chaos.runs.common import drive, plain_hub, until
from tests.chaos.world import World, world

SIZE_MIB = 8
PHASE_TIMEOUT_S = 60.0


def _results_in(here: World) -> int:
    return sum(1 for r in here.dispatcher.records if here.tracker.view(r.job_id).result.is_set())


async def _fill_and_free(
    here: World, filler: Path, plan: Plan, done: asyncio.Event, chaos: dict[str, float]
) -> None:
    try:
        await until(lambda: _results_in(here) >= plan.disk_jobs_before, PHASE_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        full_at = loop.time()
        chaos["bytes taken by the filler"] = await asyncio.to_thread(disk.fill, filler)
        before = len(here.dispatcher.records)
        await asyncio.sleep(plan.disk_full_s)
        chaos["jobs sent while full"] = len(here.dispatcher.records) - before
        await asyncio.to_thread(disk.free, filler)
        chaos["seconds full"] = round(loop.time() - full_at, 1)
        after = _results_in(here)
        await until(lambda: _results_in(here) >= after + plan.disk_jobs_before, PHASE_TIMEOUT_S)
    finally:
        await asyncio.to_thread(disk.free, filler)
        done.set()


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    state = workdir / "state"
    why_not = await asyncio.to_thread(disk.mount_tmpfs, state, SIZE_MIB)
    if why_not is not None:
        return Figures(run="disk", skipped=why_not)
    try:
        done = asyncio.Event()
        chaos: dict[str, float] = {}
        async with world(
            workdir,
            hubs=HUBS,
            make_hub=plain_hub,
            plan=plan,
            state_dir=state,
        ) as here:
            jobs = numbered("D", 20 * plan.disk_jobs_before, done)
            agents = [_fill_and_free(here, state / "filler", plan, done, chaos)]
            figures = await drive(here, "disk", jobs, agents, plan.budget_s)
            figures.chaos = chaos
            return figures
    finally:
        await asyncio.to_thread(disk.unmount, state)
