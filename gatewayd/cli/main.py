"""The `gatewayd` command line: parses arguments and hands off to one module per command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gatewayd import __version__
from gatewayd.logfmt import configure_logging


def _build_parser() -> argparse.ArgumentParser:
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    hub = sub.add_parser("hub", help="talk to a Comms Hub by hand")
    hub_sub = hub.add_subparsers(dest="hub_command", metavar="HUB_COMMAND")
    status = hub_sub.add_parser("status", help="show the hub's info, WAN, HAN and device log")
    status.add_argument("--port", required=True, help="the hub's serial port (device path)")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument(
        "--watch", action="store_true", help="then print hub events and link changes live"
    )

    sim = sub.add_parser("sim", help="run simulated hardware (for trying gatewayd without a kit)")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="DEVICE")
    sim_hub = sim_sub.add_parser("hub", help="a simulated Comms Hub on a pseudo-terminal")
    sim_hub.add_argument(
        "--scenario", required=True, type=Path, help="scenario file (TOML) describing the site"
    )
    sim_hub.add_argument(
        "--link",
        required=True,
        type=Path,
        help="path of the stable link to the port (like /dev/serial/by-id/...)",
    )
    sim_hub.add_argument(
        "--speed",
        type=float,
        default=None,
        help="site seconds per real second (default: the scenario's)",
    )

    sim_radio = sim_sub.add_parser(
        "radio", help="a simulated ZNP survey radio on a pseudo-terminal"
    )
    sim_radio.add_argument(
        "--scenario", required=True, type=Path, help="radio scenario file (TOML) or shipped name"
    )
    sim_radio.add_argument(
        "--link", required=True, type=Path, help="path of the stable link to the port"
    )
    sim_radio.add_argument(
        "--position", default=None, help="where the kit stands (one of the scenario's positions)"
    )

    survey = sub.add_parser(
        "survey",
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

    probe = sub.add_parser(
        "probe",
        help="run one commissioning job against a hub and print the verdict",
        description="Checks the meter type, waits for the hub's WAN, joins the devices to the "
        "HAN, and prints the verdict with next actions. Exit codes: 0 commissioned or "
        "installed without WAN, 3 aborted, 4 cancelled, 2 invalid job or config, 1 failed.",
    )
    probe.add_argument("--config", required=True, type=Path, help="kit config file (TOML)")
    probe.add_argument("--job", required=True, type=Path, help="job file (TOML)")
    probe.add_argument("--hub", default=None, help="hub serial port (default: the kit config's)")
    probe.add_argument(
        "--json", action="store_true", help="print the result as one JSON document on stdout"
    )
    probe.add_argument(
        "--dcc-notice",
        metavar="AFTER_S[,RESUME_ISO8601]",
        default=None,
        help="inject a DCC Service Centre notice AFTER_S seconds into the job, optionally "
        "with the time service is expected to resume",
    )
    probe.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="simulation only: site seconds per real second (default: the kit config's)",
    )

    run = sub.add_parser(
        "run", help="the daemon: take jobs over MQTT and publish every step and verdict"
    )
    run.add_argument("--config", required=True, type=Path, help="kit config file (TOML)")

    check = sub.add_parser(
        "check-config",
        help="check kit configs and job files: every problem with its file and key",
        description="Prints every problem as FILE: key.path: reason. Exit 0 when every file "
        "is valid, 2 when any is not. A file with a top-level job_id is a job file.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument(
        "--kind", choices=["auto", "kit", "job"], default="auto", help="what the files are"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="on the kit itself: missing hub ports, password and certificate files are errors",
    )

    read_meter = sub.add_parser(
        "read-meter",
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

    sim_meter = sim_sub.add_parser(
        "meter", help="a simulated meter behind an optical port, on a pseudo-terminal"
    )
    sim_meter.add_argument(
        "--meter", required=True, type=Path, help="meter file (TOML) or a shipped meter's name"
    )
    sim_meter.add_argument(
        "--link", required=True, type=Path, help="path of the stable link to the port"
    )

    demo = sub.add_parser(
        "demo",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        # The daemon logs to stdout for journald; its level comes from the kit config.
        configure_logging(getattr(logging, args.log_level or "INFO"), sys.stdout)
    else:
        configure_logging(getattr(logging, args.log_level or "WARNING"))
    if args.command == "hub" and args.hub_command == "status":
        from gatewayd.cli.hub_status import main_status

        return main_status(args.port, args.json, args.watch)
    if args.command == "sim" and args.sim_command == "hub":
        from gatewayd.cli.sim import main_sim_hub

        return main_sim_hub(args.scenario, args.link, args.speed)
    if args.command == "sim" and args.sim_command == "meter":
        from gatewayd.cli.sim import main_sim_meter

        return main_sim_meter(args.meter, args.link)
    if args.command == "read-meter":
        from gatewayd.cli.read_meter import ReadMeterArgs, main_read_meter

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
    if args.command == "sim" and args.sim_command == "radio":
        from gatewayd.cli.sim import main_sim_radio

        return main_sim_radio(args.scenario, args.link, args.position)
    if args.command == "survey":
        from gatewayd.cli.survey import SurveyArgs, main_survey

        return main_survey(
            SurveyArgs(
                radio=args.radio,
                hub_eui=args.hub_eui,
                at=args.at,
                config=args.config,
                as_json=args.json,
            )
        )
    if args.command == "probe":
        from gatewayd.cli.probe import ProbeArgs, main_probe

        return main_probe(
            ProbeArgs(
                config=args.config,
                job=args.job,
                hub=args.hub,
                as_json=args.json,
                dcc_notice=args.dcc_notice,
                time_scale=args.time_scale,
            )
        )
    if args.command == "run":
        from gatewayd.daemon.service import main_run

        return main_run(args.config, log_level_forced=args.log_level is not None)
    if args.command == "check-config":
        from gatewayd.cli.check_config import main_check_config

        return main_check_config(args.files, args.kind, strict=args.strict)
    if args.command == "demo":
        from gatewayd.demo.run import main_demo

        return main_demo(args.speed, config=args.config, metrics_port=args.metrics_port)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
