"""The `gatewayd` command line: the global options, and one module per verb behind them.

Each verb module adds its own subcommand (`gatewayd.cli.verb`); this one lists them, in the
order `gatewayd --help` shows them, sets up logging and calls the chosen verb's handler.
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


def build_parser() -> argparse.ArgumentParser:
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
    for verb in VERBS:
        verb.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(logging, args.log_level or "WARNING"))
    # No verb, or a group such as `hub` or `sim` without its subcommand.
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
