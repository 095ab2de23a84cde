"""`gatewayd read-meter`: read the existing meter through the optical probe and show it.

For the installer at the meter: the identification, the supply arrangement the readout shows
(and why), and every register with its unit. With ``--json`` stdout carries exactly one JSON
document, the reading or ``{"error": ...}``; messages go to stderr. Exit codes: 0 read,
1 the meter could not be read, 2 invalid arguments or rules file.

Only what ``register`` needs is imported at the top: every command imports every verb module, so
the optical reader (serialx), the rules and the kit config (pydantic) are imported by the
functions that use them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gatewayd.cli.verb import Subparsers

if TYPE_CHECKING:
    from gatewayd.engine.meter_arrangement import ArrangementRules, MeterReadingFacts
    from gatewayd_drivers.iec62056.reader import MeterReading, ReadOptions
    from gatewayd_drivers.iec62056.readout import ObisCode

__all__ = ["COMMAND", "ReadMeterArgs", "main_read_meter", "reading_to_json", "register"]

EXIT_OK = 0
EXIT_UNREAD = 1
EXIT_INVALID = 2
READING_SCHEMA = "gatewayd.meter_reading/1"


@dataclass(frozen=True)
class ReadMeterArgs:
    probe: str | None
    config: Path | None
    as_json: bool
    wake_up: bool
    no_baud_switch: bool
    max_baud: int | None
    address: str | None
    rules: Path | None


def reading_to_json(reading: MeterReading, facts: MeterReadingFacts) -> dict[str, Any]:
    ident = reading.identification
    return {
        "schema": READING_SCHEMA,
        "identification": {
            "manufacturer": ident.manufacturer,
            "baud_char": ident.baud_char,
            "max_baudrate": ident.max_baudrate,
            "enhanced": list(ident.enhanced),
            "identification": ident.identification,
        },
        "baudrate": reading.baudrate,
        "baud_switch_failed": reading.baud_switch_failed,
        "arrangement": {
            "supply": facts.supply.value if facts.supply is not None else None,
            "rule": facts.rule,
            "evidence": list(facts.evidence),
        },
        "data_sets": [
            {
                "address": ds.address,
                "obis": _obis(ds.obis),
                "values": [{"value": v.value, "unit": v.unit} for v in ds.values],
            }
            for ds in reading.data_sets
        ],
    }


def _obis(code: ObisCode | None) -> str | None:
    """The address's OBIS code in the full form the meter gave, letters as numbers."""
    if code is None:
        return None
    core = f"{code.c}.{code.d}" + (f".{code.e}" if code.e is not None else "")
    medium = (
        f"{code.a}-{code.b}:"
        if code.a is not None
        else (f"{code.b}:" if code.b is not None else "")
    )
    return medium + core + (f"*{code.f}" if code.f is not None else "")


def render_reading(doc: dict[str, Any], out: TextIO) -> None:
    ident, arr = doc["identification"], doc["arrangement"]
    extras = " (enhanced " + ", ".join(ident["enhanced"]) + ")" if ident["enhanced"] else ""
    lines = [
        f"Meter    {ident['manufacturer']} {ident['identification']}{extras}, "
        f"up to {ident['max_baudrate']} baud, read at {doc['baudrate']} baud"
        + (" (baud switch failed)" if doc["baud_switch_failed"] else ""),
        f"Supply   {(arr['supply'] or 'unknown').replace('_', ' ')}"
        + (f"  (rule: {arr['rule']})" if arr["rule"] else "  (no rule holds)"),
    ]
    lines += [f"         - {e}" for e in arr["evidence"]]
    width = max((len(d["address"]) for d in doc["data_sets"]), default=0)
    for n, ds in enumerate(doc["data_sets"]):
        head = "Register " if n == 0 else "         "
        vals = "  ".join(v["value"] + (f" {v['unit']}" if v["unit"] else "") for v in ds["values"])
        lines.append(f"{head}{ds['address']:<{width}}  {vals}")
    out.write("\n".join(lines) + "\n")


def _fail(args: ReadMeterArgs, code: int, message: str, step: str | None = None) -> int:
    print(f"gatewayd read-meter: {message}", file=sys.stderr)
    if args.as_json:
        doc = {"schema": READING_SCHEMA, "error": {"step": step, "message": message}}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return code


def _options(args: ReadMeterArgs) -> tuple[str, ReadOptions, ArrangementRules | None]:
    """Port, reader options and rules from the arguments and the kit config (ValueError)."""
    from gatewayd.config.kit import load_kit_config
    from gatewayd.engine.meter_arrangement import load_rules
    from gatewayd.engine.optical_check import read_options
    from gatewayd_drivers.iec62056.reader import ReadOptions

    port = args.probe
    options = ReadOptions()
    rules_path = args.rules
    if args.config is not None:
        kit = load_kit_config(args.config)
        if kit.optical is not None:
            options = read_options(kit.optical)
            port = port or kit.optical.port
            rules_path = rules_path or kit.optical.rules
    if not port:
        raise ValueError("no probe port: give --probe PORT (or --config with an [optical] table)")
    changes: dict[str, Any] = {}
    if args.wake_up:
        changes["wake_up"] = True
    if args.no_baud_switch:
        changes["baud_switch"] = False
    if args.max_baud is not None:
        changes["max_baudrate"] = args.max_baud
    if args.address is not None:
        changes["device_address"] = args.address
    if changes:
        options = dataclasses.replace(options, **changes)
    rules = load_rules(rules_path) if rules_path is not None else None
    return port, options, rules


def main_read_meter(args: ReadMeterArgs) -> int:
    import asyncio

    from gatewayd.config.errors import ConfigError
    from gatewayd.engine.optical_check import facts_from_reading
    from gatewayd_drivers.iec62056.errors import OpticalError
    from gatewayd_drivers.iec62056.reader import read_meter

    try:
        port, options, rules = _options(args)
    except ConfigError as exc:
        return _fail(args, EXIT_INVALID, f"invalid input:\n{exc}")
    except ValueError as exc:
        return _fail(args, EXIT_INVALID, str(exc))
    if not args.as_json:
        print(f"Reading the meter through the optical probe on {port}...", file=sys.stderr)
    try:
        reading = asyncio.run(read_meter(port, options))
    except OpticalError as exc:
        return _fail(args, EXIT_UNREAD, f"could not read the meter ({exc.step}): {exc}", exc.step)
    except KeyboardInterrupt:
        return _fail(args, EXIT_UNREAD, "interrupted; the meter was not read", "interrupted")
    except Exception as exc:  # the last line of defence: a clear message, no traceback
        return _fail(args, EXIT_UNREAD, f"internal error: {type(exc).__name__}: {exc}")
    doc = reading_to_json(reading, facts_from_reading(reading, rules))
    if args.as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render_reading(doc, sys.stdout)
    return EXIT_OK


COMMAND = "read-meter"


def register(subparsers: Subparsers) -> None:
    read_meter = subparsers.add_parser(
        COMMAND,
        help="read the existing meter through the optical probe (IEC 62056-21)",
        description="Reads the meter's identification and registers through the optical "
        "probe and says which supply arrangement they show. Exit codes: 0 read, 1 the meter "
        "could not be read, 2 invalid arguments.",
    )
    read_meter.add_argument(
        "--probe", default=None, metavar="PORT", help="the optical probe's serial port"
    )
    read_meter.add_argument(
        "--config", type=Path, default=None, help="kit config whose [optical] table to use"
    )
    read_meter.add_argument("--json", action="store_true", help="print one JSON document")
    read_meter.add_argument(
        "--wake-up", action="store_true", help="send the battery meters' wake-up first"
    )
    read_meter.add_argument(
        "--no-baud-switch", action="store_true", help="read at 300 baud, never switch"
    )
    read_meter.add_argument(
        "--max-baud", type=int, default=None, help="fastest rate to switch to (default 19200)"
    )
    read_meter.add_argument("--address", default=None, help="device address for the sign-on")
    read_meter.add_argument(
        "--rules", type=Path, default=None, help="own meter-to-arrangement rules file (TOML)"
    )
    read_meter.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return main_read_meter(
        ReadMeterArgs(
            probe=args.probe,
            config=args.config,
            as_json=args.json,
            wake_up=args.wake_up,
            no_baud_switch=args.no_baud_switch,
            max_baud=args.max_baud,
            address=args.address,
            rules=args.rules,
        )
    )
