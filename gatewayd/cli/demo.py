"""`gatewayd demo`: a simulated kit end to end, for trying gatewayd without hardware.

Only the verb lives here; the demo is `gatewayd.demo.run`. It is imported when the verb runs,
not when the parser is built: it pulls in the daemon and the simulators, which no other
command needs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatewayd.cli.verb import Subparsers

__all__ = ["COMMAND", "register"]

COMMAND = "demo"


def register(subparsers: Subparsers) -> None:
    demo = subparsers.add_parser(
        COMMAND,
        help="run a simulated kit end to end: hubs, an MQTT broker, the daemon and metrics",
    )
    demo.add_argument("--speed", type=float, default=None, help="site seconds per real second")
    demo.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a kit config whose [mqtt] table names a real broker to publish to instead of "
        "the embedded one (its hubs are replaced by simulated ones)",
    )
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of the demo's metrics endpoint on 127.0.0.1 (default: a free one)",
    )
    demo.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from gatewayd.demo.run import main_demo

    return main_demo(args.speed, config=args.config, metrics_port=args.metrics_port)
