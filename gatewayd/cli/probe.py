"""`gatewayd probe`: run one commissioning job against a hub's port and say the verdict.

Loads and checks the kit config and the job, runs the engine with a live view
(or plain lines), and prints the verdict with next actions; with ``--json``
stdout carries exactly one JSON document and everything else goes to stderr.
Exit codes: 0 commissioned or installed without WAN, 3 aborted, 4 cancelled,
2 invalid job or config, 1 failed (the kit could not talk to its hub) or an
internal error.

Only what ``register`` needs is imported at the top: every command imports every verb module, so
the engine, the config models (pydantic), the hub driver (serialx) and the live view (rich)
are imported by the functions that use them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gatewayd.cli.verb import Subparsers

if TYPE_CHECKING:
    import asyncio

    from gatewayd.cli.terminal import LiveView, PlainView
    from gatewayd.clock import Clock
    from gatewayd.config.job import Job
    from gatewayd.config.kit import KitConfig
    from gatewayd.engine.commissioning import JobRun
    from gatewayd.engine.dcc import ScheduledNotice
    from gatewayd.engine.progress import ProgressSink
    from gatewayd.survey.source import SurveySource

_log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ABORTED = 3
EXIT_CANCELLED = 4

EXIT_BY_OUTCOME = {
    "commissioned": EXIT_OK,
    "installed_no_wan": EXIT_OK,
    "aborted": EXIT_ABORTED,
    "cancelled": EXIT_CANCELLED,
    "failed": EXIT_FAILED,
}


@dataclass(frozen=True)
class ProbeArgs:
    config: Path
    job: Path
    hub: str | None
    as_json: bool
    dcc_notice: str | None
    time_scale: float | None


def make_clock(time_scale: float) -> Clock:
    from gatewayd.clock import ScaledClock, SystemClock

    return SystemClock() if time_scale == 1 else ScaledClock(time_scale)


async def probe(
    job: Job,
    kit: KitConfig,
    port: str,
    *,
    clock: Clock,
    sinks: list[ProgressSink],
    notice: ScheduledNotice | None = None,
    cancel: asyncio.Event | None = None,
    surveys: SurveySource | None = None,
) -> JobRun:
    """Open the hub's port, run ``job`` on it, close the port."""
    import asyncio

    from gatewayd.engine.commissioning import run_job
    from gatewayd.engine.dcc import DccInput
    from gatewayd_drivers.commshub.client import HubClient
    from gatewayd_drivers.serial_link import SerialSettings

    hub_cfg = kit.default_hub
    # A port another process holds (a running daemon) fails the job at once, not after the
    # engine's connect timeout.
    hub = HubClient(
        port,
        name=hub_cfg.name,
        settings=SerialSettings(baudrate=hub_cfg.baudrate),
        fail_fast_when_busy=True,
    )
    dcc = DccInput(job.job_id)
    await hub.start()
    injector = asyncio.create_task(notice.inject(dcc, clock)) if notice is not None else None
    try:
        return await run_job(
            job, kit, hub, clock=clock, dcc=dcc, cancel=cancel, sinks=sinks, surveys=surveys
        )
    finally:
        if injector is not None:
            if not injector.done():
                _log.info(
                    "the DCC notice due at %.0f s came after the verdict; ignored",
                    notice.after_s if notice else 0,
                )
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await injector
        await hub.stop()


async def _run(args: ProbeArgs, job: Job, kit: KitConfig, notice: ScheduledNotice | None) -> int:
    import asyncio

    from rich.console import Console

    from gatewayd.cli.terminal import LiveView, PlainView, render_verdict

    scale = args.time_scale if args.time_scale is not None else kit.time_scale
    clock = make_clock(scale)
    port = args.hub or kit.default_hub.port
    interactive = not args.as_json and sys.stdout.isatty()
    view: LiveView | PlainView
    if interactive:
        started = clock.monotonic()
        view = LiveView(Console(), job.job_id, lambda: clock.monotonic() - started)
    else:
        view = PlainView(sys.stderr if args.as_json else sys.stdout)
    surveys = _survey_source(kit, clock, view, prompt=interactive and sys.stdin.isatty())
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The first Ctrl-C cancels the job cleanly (a result is still produced); a second one
    # interrupts at once.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, _first_interrupt, loop, cancel)
    try:
        run = await probe(
            job,
            kit,
            port,
            clock=clock,
            sinks=[view],
            notice=notice,
            cancel=cancel,
            surveys=surveys,
        )
    finally:
        view.close()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
    doc = run.result
    if args.as_json:
        render_verdict(doc, sys.stderr)
        sys.stdout.write(json.dumps(doc.model_dump(mode="json"), indent=2) + "\n")
    else:
        render_verdict(doc, sys.stdout)
    return EXIT_BY_OUTCOME.get(doc.outcome.value, EXIT_FAILED)


def _survey_source(
    kit: KitConfig, clock: Clock, view: LiveView | PlainView, *, prompt: bool
) -> SurveySource:
    """Stored surveys always; on a terminal with a radio, the installer is asked first."""
    from gatewayd.cli.prompt import terminal_prompt
    from gatewayd.cli.terminal import LiveView
    from gatewayd.survey.scan import radio_surveyor
    from gatewayd.survey.source import PromptedSurveys, StoredSurveys
    from gatewayd.survey.store import SurveyStore

    stored = StoredSurveys(SurveyStore(kit.survey.store_dir), kit.survey, clock)
    if not prompt or kit.radio is None:
        return stored
    ask_terminal = terminal_prompt()

    async def ask(text: str) -> str:
        if isinstance(view, LiveView):
            view.pause()
        try:
            return await ask_terminal(text)
        finally:
            if isinstance(view, LiveView):
                view.resume()

    def say(text: str) -> None:
        print(text, flush=True)

    return PromptedSurveys(stored, radio_surveyor(kit.radio, kit.survey, clock), ask, say)


def _first_interrupt(loop: asyncio.AbstractEventLoop, cancel: asyncio.Event) -> None:
    cancel.set()
    print("\nCancelling the job (Ctrl-C again to stop at once)...", file=sys.stderr)
    loop.remove_signal_handler(signal.SIGINT)


def main_probe(args: ProbeArgs) -> int:
    import asyncio

    from gatewayd.config.errors import ConfigError
    from gatewayd.config.job import load_job
    from gatewayd.config.kit import load_kit_config
    from gatewayd.engine.dcc import ScheduledNotice

    try:
        kit = load_kit_config(args.config)
        job = load_job(args.job)
        kit.timing(job.timing, source=str(args.job))
        notice = ScheduledNotice.parse(args.dcc_notice) if args.dcc_notice else None
        if args.time_scale is not None and not args.time_scale > 0:
            raise ValueError(f"--time-scale must be greater than 0, got {args.time_scale}")
    except ConfigError as exc:
        print(f"gatewayd probe: invalid input:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    except ValueError as exc:
        print(f"gatewayd probe: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        return asyncio.run(_run(args, job, kit, notice))
    except KeyboardInterrupt:
        print("gatewayd probe: interrupted; no verdict was reached", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # the last line of defence: a clear message, no traceback
        _log.debug("internal error", exc_info=True)
        print(
            f"gatewayd probe: internal error: {type(exc).__name__}: {exc} "
            "(run with --log-level DEBUG for details)",
            file=sys.stderr,
        )
        return EXIT_FAILED


COMMAND = "probe"


def register(subparsers: Subparsers) -> None:
    probe = subparsers.add_parser(
        COMMAND,
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
    probe.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
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
