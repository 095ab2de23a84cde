"""`gatewayd run --config KIT`: the daemon, as a kit runs it all day.

Only the verb lives here; the daemon is `gatewayd.daemon.service`. It is imported when the
verb runs, not when the parser is built, so that every other command starts without it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gatewayd.cli.verb import Subparsers
from gatewayd.logfmt import configure_logging

__all__ = ["COMMAND", "register"]

COMMAND = "run"


def register(subparsers: Subparsers) -> None:
    run = subparsers.add_parser(
        COMMAND, help="the daemon: take jobs over MQTT and publish every step and verdict"
    )
    run.add_argument("--config", required=True, type=Path, help="kit config file (TOML)")
    run.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    # The daemon logs to stdout for journald, and its level comes from the kit config unless
    # --log-level forces one: this replaces the stderr logging every other verb gets.
    configure_logging(getattr(logging, args.log_level or "INFO"), sys.stdout)
    from gatewayd.daemon.service import main_run

    return main_run(args.config, log_level_forced=args.log_level is not None)
