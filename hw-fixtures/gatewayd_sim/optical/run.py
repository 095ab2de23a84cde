"""Run one simulated meter on its own until interrupted (``gatewayd sim meter``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gatewayd_sim.optical.meter import OpticalMeterSim
from gatewayd_sim.optical.profile import load_meter


async def run_standalone(meter_file: Path, link: Path) -> None:
    sim = OpticalMeterSim(load_meter(meter_file), link)
    await sim.start()
    print(f"simulated meter {meter_file.stem} on {link} ({sim.port.path})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
