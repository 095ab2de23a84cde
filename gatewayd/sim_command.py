"""`gatewayd sim hub` / `sim meter`: run a simulator on its own, for trying gatewayd by hand."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hwsim.commshub.run import run_standalone
from hwsim.commshub.scenario import SCENARIO_DIR, ScenarioError, shipped_scenario


def resolve_scenario(name_or_path: Path) -> Path:
    """A path as given, or the name of a shipped scenario (``quick``, ``wan_never``...)."""
    if name_or_path.exists():
        return name_or_path
    shipped = shipped_scenario(str(name_or_path))
    return shipped if shipped.exists() else name_or_path


def main_sim_hub(scenario: Path, link: Path, speed: float | None) -> int:
    path = resolve_scenario(scenario)
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
        print(
            f"gatewayd sim hub: no scenario file {scenario} (shipped scenarios: {names})",
            file=sys.stderr,
        )
        return 2
    if speed is not None and not speed > 0:
        print(f"gatewayd sim hub: --speed must be greater than 0, got {speed}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run_standalone(path, link, speed))
    except ScenarioError as exc:
        print(f"gatewayd sim hub: invalid scenario:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"gatewayd sim hub: cannot create the port at {link}: {exc}", file=sys.stderr)
        return 1
    return 0


def main_sim_meter(meter: Path, link: Path) -> int:
    from hwsim.optical.profile import METER_DIR, MeterFileError, shipped_meter
    from hwsim.optical.run import run_standalone as run_meter

    path = meter if meter.exists() else shipped_meter(str(meter))
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in METER_DIR.glob("*.toml")))
        print(
            f"gatewayd sim meter: no meter file {meter} (shipped meters: {names})", file=sys.stderr
        )
        return 2
    try:
        asyncio.run(run_meter(path, link))
    except MeterFileError as exc:
        print(f"gatewayd sim meter: invalid meter file:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"gatewayd sim meter: cannot create the port at {link}: {exc}", file=sys.stderr)
        return 1
    return 0


def main_sim_radio(scenario: Path, link: Path, position: str | None) -> int:
    """`gatewayd sim radio`: the ZNP survey radio simulator on its own."""
    from hwsim.znp.run import run_radio_standalone
    from hwsim.znp.scenario import SCENARIO_DIR as RADIO_DIR
    from hwsim.znp.scenario import shipped_radio_scenario

    path = scenario if scenario.exists() else shipped_radio_scenario(str(scenario))
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in RADIO_DIR.glob("*.toml")))
        print(
            f"gatewayd sim radio: no scenario file {scenario} (shipped scenarios: {names})",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(run_radio_standalone(path, link, position))
    except ScenarioError as exc:
        print(f"gatewayd sim radio: invalid scenario:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"gatewayd sim radio: --position: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"gatewayd sim radio: cannot create the port at {link}: {exc}", file=sys.stderr)
        return 1
    return 0
