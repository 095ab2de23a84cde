"""The `gatewayd` command line: the global options, and one module per verb behind them.

Each verb module adds its own subcommand (`gatewayd.cli.verb`); this one lists them, in the
order `gatewayd --help` shows them, sets up logging and calls the chosen verb's handler. When
the command line names a command first, only that verb's parser is built: the others cost
`gatewayd run` time on every start and parse nothing it was given.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gatewayd import __version__
from gatewayd.cli import check_config, demo, hub_status, probe, read_meter, run, sim, survey
from gatewayd.cli.verb import Handler, Verb
from gatewayd.logfmt import configure_logging

__all__ = ["VERBS", "build_parser", "main"]

VERBS: tuple[Verb, ...] = (hub_status, sim, survey, probe, run, check_config, read_meter, demo)


def build_parser(verbs: Sequence[Verb] = VERBS) -> argparse.ArgumentParser:
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
    for verb in verbs:
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
    command = named_command(given)
    # An unknown command gets the whole parser too: its error lists the commands there are.
    chosen = [verb for verb in VERBS if command == verb.COMMAND] or VERBS
    parser = build_parser(chosen)
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
