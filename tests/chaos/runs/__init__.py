"""The chaos runs, by name, in the order the suite makes them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tests.chaos.figures import Figures
from tests.chaos.plan import Plan
from tests.chaos.runs import disk_full, kills, noise, pulls, silent

Run = Callable[[Path, Plan, int], Coroutine[Any, Any, Figures]]

RUNS: dict[str, Run] = {
    "kills": kills.run,
    "pulls": pulls.run,
    "noise": noise.run,
    "disk": disk_full.run,
    "silent": silent.run,
}
