"""The `gatewayd` command line: the global options, and one module per verb behind them.

Each verb module adds its own subcommand (`gatewayd.cli.verb`); this one lists them, in the
order `gatewayd --help` shows them, sets up logging and calls the chosen verb's handler. When
the command line names a command first, only that verb's module is imported and only its
parser built: the others cost `gatewayd run` time on every start and parse nothing it was
given. Help, ``--version`` and an unknown command get every verb.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, cast

from gatewayd import __version__
from gatewayd.cli.verb import Handler, Verb
from gatewayd.logfmt import configure_logging

if TYPE_CHECKING:
    from gatewayd.cli import check_config, demo, hub_status, probe, read_meter, run, sim, survey

    # Where the type checkers hold every verb module to the Verb protocol.
    _CHECKED: tuple[Verb, ...] = (
        hub_status, sim, survey, probe, run, check_config, read_meter, demo,
    )  # fmt: skip

__all__ = ["COMMANDS", "build_parser", "main", "named_command", "verbs"]

# Each verb module of this package by the command it adds (its COMMAND), in the order
# `gatewayd --help` lists them.
COMMANDS: Final = {
    "hub": "hub_status",
    "sim": "sim",
    "survey": "survey",
    "probe": "probe",
    "run": "run",
    "check-config": "check_config",
    "read-meter": "read_meter",
    "demo": "demo",
}


def verbs(command: str | None = None) -> tuple[Verb, ...]:
    """The module of the verb that adds ``command``; every verb module when no verb adds it."""
    names = [COMMANDS[command]] if command in COMMANDS else list(COMMANDS.values())
    found: list[Verb] = []
    for name in names:
        # __import__, not importlib.import_module: `python -X importtime` sees it.
        __import__(f"{__package__}.{name}")
        found.append(cast(Verb, sys.modules[f"{__package__}.{name}"]))
    return tuple(found)


def build_parser(chosen: Sequence[Verb] | None = None) -> argparse.ArgumentParser:
    """The parser with the ``chosen`` verbs' commands; every verb's when None."""
    parser = argparse.ArgumentParser(
        prog="gatewayd",
        description="Commissioning daemon for SMETS2 installers' kits.",
    )
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: WARNING on stderr; for `run`, the kit config's log.level, "
        "on stdout)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb in verbs() if chosen is None else chosen:
        verb.register(subparsers)
    return parser


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, when nothing but ``--log-level`` comes before it.

    Anything else first (``--help``, ``--version``, an abbreviated option) gets None, and so the
    whole parser, which alone can answer it.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--log-level":
            i += 2
        elif arg.startswith("--log-level="):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    # An unknown command gets the whole parser too: its error lists the commands there are.
    parser = build_parser(verbs(named_command(given)))
    args = parser.parse_args(given)
    configure_logging(getattr(logging, args.log_level or "WARNING"))
    # No verb, or a group such as `hub` or `sim` without its subcommand.
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        # The top help, with every command, even when the parser was built for one group.
        build_parser().print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
