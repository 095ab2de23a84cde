"""`gatewayd sim hub` / `sim meter` / `sim radio`: run a simulator on its own, for trying
gatewayd by hand. Each finds its file (a path, or the name of a shipped one), then runs
until Ctrl-C; every failure is one line on stderr and an exit code, never a traceback.

The only module of the CLI that imports the simulators. It does so inside each device's
function: every command imports every verb module, this one included, and neither the
daemon nor the other verbs should load simulator code that they never run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gatewayd.cli.verb import Subparsers


def resolve_scenario(name_or_path: Path) -> Path:
    """A path as given, or the name of a shipped scenario (``quick``, ``wan_never``...)."""
    from gatewayd_sim.commshub.scenario import SCENARIO_DIR

    return _resolve(name_or_path, SCENARIO_DIR)


def _resolve(name_or_path: Path, shipped_dir: Path) -> Path:
    if name_or_path.exists():
        return name_or_path
    name = str(name_or_path)
    shipped = shipped_dir / (name if name.endswith(".toml") else f"{name}.toml")
    return shipped if shipped.exists() else name_or_path


def _no_file(device: str, what: str, given: Path, shipped_dir: Path) -> int:
    names = ", ".join(sorted(p.stem for p in shipped_dir.glob("*.toml")))
    print(
        f"gatewayd sim {device}: no {what} file {given} (shipped {what}s: {names})",
        file=sys.stderr,
    )
    return 2


def _run(
    device: str,
    main: Coroutine[Any, Any, None],
    link: Path,
    invalid: tuple[type[Exception], str],
    *,
    bad_argument: str | None = None,
) -> int:
    """Run a simulator; ``invalid`` is its file's error type and what to call it."""
    import asyncio

    error_type, what = invalid
    try:
        asyncio.run(main)
    except error_type as exc:
        print(f"gatewayd sim {device}: invalid {what}:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        if bad_argument is None:
            raise
        print(f"gatewayd sim {device}: {bad_argument}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"gatewayd sim {device}: cannot create the port at {link}: {exc}", file=sys.stderr)
        return 1
    return 0


def main_sim_hub(scenario: Path, link: Path, speed: float | None) -> int:
    from gatewayd_sim.commshub.run import run_standalone
    from gatewayd_sim.commshub.scenario import SCENARIO_DIR, ScenarioError

    path = resolve_scenario(scenario)
    if not path.exists():
        return _no_file("hub", "scenario", scenario, SCENARIO_DIR)
    if speed is not None and not speed > 0:
        print(f"gatewayd sim hub: --speed must be greater than 0, got {speed}", file=sys.stderr)
        return 2
    return _run("hub", run_standalone(path, link, speed), link, (ScenarioError, "scenario"))


def main_sim_meter(meter: Path, link: Path) -> int:
    from gatewayd_sim.optical.profile import METER_DIR, MeterFileError
    from gatewayd_sim.optical.run import run_standalone as run_meter

    path = _resolve(meter, METER_DIR)
    if not path.exists():
        return _no_file("meter", "meter", meter, METER_DIR)
    return _run("meter", run_meter(path, link), link, (MeterFileError, "meter file"))


def main_sim_radio(scenario: Path, link: Path, position: str | None) -> int:
    """`gatewayd sim radio`: the ZNP survey radio simulator on its own."""
    from gatewayd_sim.commshub.scenario import ScenarioError
    from gatewayd_sim.znp.run import run_radio_standalone
    from gatewayd_sim.znp.scenario import SCENARIO_DIR as RADIO_DIR

    path = _resolve(scenario, RADIO_DIR)
    if not path.exists():
        return _no_file("radio", "scenario", scenario, RADIO_DIR)
    return _run(
        "radio",
        run_radio_standalone(path, link, position),
        link,
        (ScenarioError, "scenario"),
        bad_argument="--position",
    )


COMMAND = "sim"


def register(subparsers: Subparsers) -> None:
    sim = subparsers.add_parser(
        COMMAND, help="run simulated hardware (for trying gatewayd without a kit)"
    )
    devices = sim.add_subparsers(dest="sim_command", metavar="DEVICE")
    hub = devices.add_parser("hub", help="a simulated Comms Hub on a pseudo-terminal")
    hub.add_argument(
        "--scenario", required=True, type=Path, help="scenario file (TOML) describing the site"
    )
    hub.add_argument(
        "--link",
        required=True,
        type=Path,
        help="path of the stable link to the port (like /dev/serial/by-id/...)",
    )
    hub.add_argument(
        "--speed",
        type=float,
        default=None,
        help="site seconds per real second (default: the scenario's)",
    )
    hub.set_defaults(handler=_handle_hub)

    radio = devices.add_parser("radio", help="a simulated ZNP survey radio on a pseudo-terminal")
    radio.add_argument(
        "--scenario", required=True, type=Path, help="radio scenario file (TOML) or shipped name"
    )
    radio.add_argument(
        "--link", required=True, type=Path, help="path of the stable link to the port"
    )
    radio.add_argument(
        "--position", default=None, help="where the kit stands (one of the scenario's positions)"
    )
    radio.set_defaults(handler=_handle_radio)

    meter = devices.add_parser(
        "meter", help="a simulated meter behind an optical port, on a pseudo-terminal"
    )
    meter.add_argument(
        "--meter", required=True, type=Path, help="meter file (TOML) or a shipped meter's name"
    )
    meter.add_argument(
        "--link", required=True, type=Path, help="path of the stable link to the port"
    )
    meter.set_defaults(handler=_handle_meter)


def _handle_hub(args: argparse.Namespace) -> int:
    return main_sim_hub(args.scenario, args.link, args.speed)


def _handle_radio(args: argparse.Namespace) -> int:
    return main_sim_radio(args.scenario, args.link, args.position)


def _handle_meter(args: argparse.Namespace) -> int:
    return main_sim_meter(args.meter, args.link)
