"""Run the hub simulator on its own (``gatewayd sim hub``), narrating to stdout until cancelled."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario


def _print(line: str) -> None:
    print(line, flush=True)


async def run_standalone(scenario: Path, link: Path, speed: float | None = None) -> None:
    """Start a simulator for ``scenario`` behind ``link`` and run until cancelled (Ctrl-C).

    Raises ``ScenarioError`` for a bad scenario file, before anything is created.
    """
    model = load_scenario(scenario)
    sim = HubSimulator(model, link, speed=speed, on_note=_print)
    await sim.start()
    _print(f"hub simulator: scenario {scenario}")
    _print(f"hub simulator: port {sim.port_path}")
    _print(f"hub simulator: link {link} (open this path; it survives cable pulls)")
    _print(f"hub simulator: speed {sim.speed:g} site seconds per real second; Ctrl-C to stop")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
        sys.stdout.flush()
