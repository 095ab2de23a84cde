"""Noise: every hub behind a serial line with a bit-error rate of 1e-3, both ways.

At that rate about one frame in six carries a flipped bit; the LSP's CRC, resends and
replays must carry every job to its site's verdict, and every event to the back office.
"""

from __future__ import annotations

from pathlib import Path

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import Scenario
from tests.chaos.dispatch import numbered
from tests.chaos.figures import Figures
from tests.chaos.kit import SPEED
from tests.chaos.noisy_line import NoisyHub
from tests.chaos.plan import BER, HUBS, Plan
from tests.chaos.runs.common import drive
from tests.chaos.world import world


async def run(workdir: Path, plan: Plan, seed: int) -> Figures:
    def noisy(scenario: Scenario, link: Path, index: int) -> HubSimulator:
        return NoisyHub(scenario, link, speed=SPEED, ber=BER, seed=seed * 100 + index)

    async with world(workdir, hubs=HUBS, make_hub=noisy, plan=plan) as here:
        figures = await drive(here, "noise", numbered("N", plan.noise_jobs), [], plan.budget_s)
        lines = [sim for slot in here.hubs for sim, _ in slot.sims if isinstance(sim, NoisyHub)]
        bits = sum(sim.bits for sim in lines)
        flipped = sum(sim.flipped for sim in lines)
        figures.chaos = {
            "bits on the lines": bits,
            "bits flipped": flipped,
            "measured bit-error rate": round(flipped / bits, 5) if bits else 0.0,
        }
        return figures
