"""Run the radio simulator alone (``gatewayd sim radio``), narrating to stdout until cancelled."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gatewayd_sim.znp.radio import ZnpSimulator
from gatewayd_sim.znp.scenario import load_radio_scenario


def _print(line: str) -> None:
    print(line, flush=True)


async def run_radio_standalone(scenario: Path, link: Path, position: str | None = None) -> None:
    """Start a radio for ``scenario`` behind ``link`` and run until cancelled (Ctrl-C).

    Raises ``ScenarioError`` for a bad scenario and ``ValueError`` for an unknown position,
    before anything is created.
    """
    model = load_radio_scenario(scenario)
    sim = ZnpSimulator(model, link, on_note=_print)
    if position is not None:
        sim.move_to(position)
    await sim.start()
    _print(f"radio simulator: scenario {scenario}")
    _print(f"radio simulator: port {sim.port_path}")
    _print(f"radio simulator: link {link}; the kit is {sim.position}; Ctrl-C to stop")
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
        sys.stdout.flush()
