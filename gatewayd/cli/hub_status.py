"""`gatewayd hub status`: read a hub's info, WAN, HAN and device log, and show them.

For installers and developers trying the driver by hand: one snapshot, or with
``--watch`` a live line per hub event and link change (so a pulled cable and
its recovery can be seen).

Only what ``register`` needs is imported at the top: every command imports every verb module, so
the hub driver (serialx) and the engine are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from gatewayd.cli.verb import Subparsers


async def run_hub_status(
    port: str, *, as_json: bool, watch: bool, connect_timeout_s: float = 5.0
) -> int:
    """Print the hub's state; returns the process exit code."""
    from gatewayd.engine.hub_snapshot import (
        describe_event,
        read_snapshot,
        render_snapshot,
        snapshot_to_json,
    )
    from gatewayd_drivers.commshub.client import HubClient, LinkUp
    from gatewayd_drivers.commshub.errors import HubError
    from gatewayd_drivers.commshub.messages import HubStarted

    # Beside a daemon that has the port, say so at once rather than wait out the timeout.
    hub = HubClient(port, name="hub", fail_fast_when_busy=True)
    await hub.start()
    try:
        if not await hub.wait_connected(connect_timeout_s):
            print(
                f"gatewayd: cannot open hub port {port}: {hub.last_link_error or 'timed out'}",
                file=sys.stderr,
            )
            return 1
        events = hub.events()
        try:
            snap = await read_snapshot(hub)
        except HubError as exc:
            print(f"gatewayd: hub on {port} did not answer: {exc}", file=sys.stderr)
            return 1
        if as_json:
            print(json.dumps(snapshot_to_json(snap), indent=2))
        else:
            render_snapshot(snap, sys.stdout)
        if not watch:
            return 0
        print("Watching hub events (Ctrl-C to stop)...", file=sys.stderr)
        async for event in events:
            print(describe_event(event), flush=True)
            # After a restart or a replug what we showed is stale: show it afresh.
            if isinstance(event, HubStarted) or (isinstance(event, LinkUp) and event.reopened):
                try:
                    render_snapshot(await read_snapshot(hub), sys.stdout)
                except HubError as exc:
                    print(f"could not re-read the hub: {exc}", flush=True)
        return 0
    finally:
        await hub.stop()


def main_status(port: str, as_json: bool, watch: bool) -> int:
    import asyncio

    try:
        return asyncio.run(run_hub_status(port, as_json=as_json, watch=watch))
    except KeyboardInterrupt:
        return 0


COMMAND = "hub"


def register(subparsers: Subparsers) -> None:
    hub = subparsers.add_parser(COMMAND, help="talk to a Comms Hub by hand")
    hub_sub = hub.add_subparsers(dest="hub_command", metavar="HUB_COMMAND")
    status = hub_sub.add_parser("status", help="show the hub's info, WAN, HAN and device log")
    status.add_argument("--port", required=True, help="the hub's serial port (device path)")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument(
        "--watch", action="store_true", help="then print hub events and link changes live"
    )
    status.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return main_status(args.port, args.json, args.watch)
