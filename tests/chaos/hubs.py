"""The kit's simulated hubs: one per site, each on its own pty link, replaceable mid-run.

A hub that went silent for good is swapped for a fresh one on the same link, as an
installer swaps a dead hub; the old simulator is kept, since what it sent counts in the
figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import Scenario, load_scenario, shipped_scenario
from tests.chaos.sites import Site, site_for_hub

MakeHub = Callable[[Scenario, Path, int], HubSimulator]  # scenario, link, hub index


@dataclass
class Slot:
    name: str
    index: int
    site: Site
    link: Path
    sim: HubSimulator
    retired: list[tuple[HubSimulator, float]] = field(default_factory=list)  # and when
    # Cleared while the hub is being replaced: no job starts on it meanwhile.
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.ready.set()

    @property
    def sims(self) -> list[tuple[HubSimulator, float | None]]:
        """Every simulator that stood on this link and when it left (None: still there)."""
        return [*self.retired, (self.sim, None)]


class HubBank:
    def __init__(self, workdir: Path, count: int, make: MakeHub) -> None:
        self._make = make
        self.slots: list[Slot] = []
        for i in range(count):
            site = site_for_hub(i)
            link = workdir / f"hub-{i + 1}"
            scenario = load_scenario(shipped_scenario(site.scenario))
            self.slots.append(Slot(f"hub-{i + 1}", i, site, link, make(scenario, link, i)))

    def __iter__(self) -> Iterator[Slot]:
        return iter(self.slots)

    def links(self) -> list[tuple[str, Path]]:
        return [(slot.name, slot.link) for slot in self.slots]

    async def start(self) -> None:
        for slot in self.slots:
            await slot.sim.start()

    async def replace(self, slot: Slot) -> None:
        """A fresh hub of the same site on the same link (the old one is unplugged)."""
        old = slot.sim
        await old.stop()
        slot.retired.append((old, asyncio.get_running_loop().time()))
        slot.sim = self._make(old.scenario, slot.link, slot.index)
        await slot.sim.start()

    async def stop(self) -> None:
        for slot in self.slots:
            await slot.sim.stop()
