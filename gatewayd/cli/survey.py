"""`gatewayd survey`: an RF survey through the kit's ZNP radio, as a table or one JSON document.

Publications, terminal flavour. Opens the radio's port, runs the survey (beacon scans and an
energy scan), and prints a per-channel table: an energy bar, the hub's channel marked, the
networks heard on each channel, and the judgement with its reasons. With ``--json`` stdout
carries exactly one JSON document (the ``SurveyDocument``) and everything else goes to
stderr. With ``--at`` the survey is kept as the latest at that position, for a later job's
HAN evidence. Exit codes: 0 survey done (whatever it found), 1 the radio could not be used,
2 invalid arguments or config.

Only what ``register`` needs is imported at the top: every command imports every verb module, so
the radio driver (serialx), the survey models (pydantic) and the table (rich) are imported by
the functions that use them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gatewayd.cli.verb import Subparsers

if TYPE_CHECKING:
    from gatewayd.survey.judgement import SurveyDocument

_log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
_BAR_WIDTH = 24

# By each SurveyJudgement's value: keyed by the members, this table would import the engine (and
# pydantic) with the parser.
_JUDGEMENT_WORDS = {
    "good": ("GOOD: the hub is heard well here", "bold green"),
    "marginal": ("MARGINAL: the hub is heard here, but not reliably", "bold yellow"),
    "not_heard": ("NOT HEARD: the hub's network does not reach here", "bold red"),
}


@dataclass(frozen=True)
class SurveyArgs:
    radio: str | None
    hub_eui: str | None
    at: str | None
    config: Path | None
    as_json: bool


def render_survey(doc: SurveyDocument, out: TextIO, *, color: bool | None = None) -> None:
    """The per-channel table and the judgement, for people."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, force_terminal=color, no_color=color is False, width=100)
    hub_channel = doc.hub.channel if doc.hub is not None else None
    table = Table(title=f"RF survey at {doc.position or 'an unnamed position'}")
    table.add_column("ch", justify="right")
    table.add_column("energy (0-255)")
    table.add_column("", justify="right")
    table.add_column("networks heard (extended PAN ID, PAN ID, LQI)")
    nets_by_channel: dict[int, list[str]] = {}
    for n in doc.networks:
        label = f"{n.extended_pan_id} {n.pan_id:#06x} LQI {n.lqi}"
        if n.is_hub:
            label = f"HUB {label}"
        if n.permit_joining:
            label += " (open)"
        nets_by_channel.setdefault(n.channel, []).append(label)
    for ch in doc.channels:
        filled = round(ch.energy * _BAR_WIDTH / 255)
        bar = Text("#" * filled + "." * (_BAR_WIDTH - filled), style="red" if ch.busy else "cyan")
        mark = Text(f"{ch.channel}", style="bold" if ch.channel == hub_channel else "")
        if ch.channel == hub_channel:
            mark.append(" <", style="bold green")
        nets = "\n".join(nets_by_channel.pop(ch.channel, [])) or "-"
        table.add_row(mark, bar, str(ch.energy), nets)
    for ch_num, labels in sorted(nets_by_channel.items()):  # heard on a channel not scanned
        table.add_row(str(ch_num), "", "", "\n".join(labels))
    console.print(table)
    if doc.judgement is None:
        console.print("No hub EUI-64 given: the air is listed above, nothing was judged.")
    else:
        words, style = _JUDGEMENT_WORDS[doc.judgement.value]
        console.print(Text(words, style=style))
        if doc.hub is not None:
            console.print(
                f"Hub {doc.hub_eui64}: channel {doc.hub.channel}, PAN {doc.hub.pan_id:#06x}, "
                f"LQI {doc.hub.lqi} (about {doc.hub.rssi_dbm_estimate} dBm), heard in "
                f"{doc.hub.scans_heard} of {doc.thresholds.beacon_scans} scans"
            )
    for reason in doc.reasons:
        console.print(f"  - {reason}")
    console.print(f"Radio: {doc.radio}" + (" (needed a reset)" if doc.stick_needed_reset else ""))


def _fail(message: str, code: int) -> int:
    print(f"gatewayd survey: {message}", file=sys.stderr)
    return code


def main_survey(args: SurveyArgs) -> int:
    import asyncio

    from gatewayd.config.errors import ConfigError
    from gatewayd.config.kit import load_kit_config
    from gatewayd.config.survey import SurveyConfig
    from gatewayd.survey.scan import SurveyFailed, survey_on_port
    from gatewayd.survey.store import SurveyStore, position_key
    from gatewayd_drivers.commshub.eui64 import Eui64

    try:
        kit = load_kit_config(args.config) if args.config is not None else None
    except ConfigError as exc:
        return _fail(f"invalid kit config:\n{exc}", EXIT_INVALID)
    cfg = kit.survey if kit is not None else SurveyConfig()
    port = args.radio or (kit.radio.port if kit is not None and kit.radio is not None else None)
    baudrate = kit.radio.baudrate if kit is not None and kit.radio is not None else 115_200
    if port is None:
        return _fail("no radio port: give --radio PORT (or [radio] port in --config)", 2)
    try:
        hub_eui = Eui64.parse(args.hub_eui) if args.hub_eui is not None else None
    except ValueError as exc:
        return _fail(f"--hub-eui: {exc}", EXIT_INVALID)
    try:
        position = position_key(args.at) if args.at is not None else None
    except ValueError as exc:
        return _fail(f"--at: {exc}", EXIT_INVALID)
    if not os.path.exists(port):
        return _fail(f"no serial port at {port} (is the radio plugged in?)", EXIT_FAILED)
    try:
        doc = asyncio.run(
            survey_on_port(port, cfg, hub_eui=hub_eui, position=position, baudrate=baudrate)
        )
    except SurveyFailed as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted; no survey was taken", EXIT_FAILED)
    except Exception as exc:  # the last line of defence: a clear message, no traceback
        _log.debug("internal error", exc_info=True)
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)",
            EXIT_FAILED,
        )
    if position is not None and cfg.store_dir is None:
        print(
            "gatewayd survey: not kept for later jobs: the kit config sets no survey.store_dir",
            file=sys.stderr,
        )
    elif position is not None:
        try:
            SurveyStore(cfg.store_dir).record(doc)
        except OSError as exc:
            print(f"gatewayd survey: could not keep the survey: {exc}", file=sys.stderr)
    if args.as_json:
        sys.stdout.write(json.dumps(doc.model_dump(mode="json"), indent=2) + "\n")
    else:
        render_survey(doc, sys.stdout, color=None if sys.stdout.isatty() else False)
    return EXIT_OK


COMMAND = "survey"


def register(subparsers: Subparsers) -> None:
    survey = subparsers.add_parser(
        COMMAND,
        help="RF survey through the kit's Zigbee radio: channel energy, networks, the hub's signal",
        description="Scans for Zigbee networks and measures the energy on channels 11-26 "
        "through the kit's ZNP radio, finds the hub's network by its EUI-64 and judges how well "
        "it is heard here. Exit codes: 0 survey done, 1 the radio could not be used, 2 invalid "
        "arguments or config.",
    )
    survey.add_argument("--radio", default=None, help="the radio's serial port (device path)")
    survey.add_argument(
        "--hub-eui", default=None, help="the hub's EUI-64, e.g. 00-DB-12-34-56-78-90-A0"
    )
    survey.add_argument(
        "--at",
        default=None,
        help="where the kit stands: a device's EUI-64 or a label; keeps the survey for jobs",
    )
    survey.add_argument(
        "--config", type=Path, default=None, help="kit config (thresholds, [radio], store)"
    )
    survey.add_argument("--json", action="store_true", help="print one JSON document")
    survey.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return main_survey(
        SurveyArgs(
            radio=args.radio,
            hub_eui=args.hub_eui,
            at=args.at,
            config=args.config,
            as_json=args.json,
        )
    )
