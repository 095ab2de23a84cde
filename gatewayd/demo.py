"""`gatewayd demo`: a simulated kit, end to end, with nothing to install or plug in.

Starts a simulated Comms Hub per site scenario on a pseudo-terminal, shows one
hub's state as `gatewayd hub status` would, then runs a commissioning job per
site through the real engine and driver, with live progress and each verdict
(with its abort code). Site time runs fast (the scenarios' speed) so the
whole tour takes well under a minute.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from drivers.commshub.client import HubClient
from gatewayd.dcc import ScheduledNotice
from gatewayd.hub_status import read_snapshot, render_snapshot
from gatewayd.jobfile import Job, parse_job
from gatewayd.kitconfig import KitConfig, parse_kit_config
from gatewayd.probe_command import make_clock, probe
from gatewayd.progress import ProgressSink
from gatewayd.terminal import LiveView, PlainView, render_verdict
from hwsim.commshub.hub import HubSimulator
from hwsim.commshub.scenario import load_scenario, shipped_scenario

DEFAULT_SPEED = 50.0

_DEVICES = [
    {"eui64": f"00-DB-12-34-56-78-90-{suffix}", "type": dtype, "install_code": code}
    for suffix, dtype, code in (
        ("A1", "ESME", "3F1A9C0E5B7D2468ACE013579BDF0246"),
        ("A2", "GSME", "8E2C4A6F1B3D5079E1C3A5F7092B4D6E"),
        ("A3", "IHD", "C0FFEE1234567890ABCDEF0123456789"),
    )
]


def _job(job_id: str, **changes: Any) -> Job:
    doc: dict[str, Any] = {
        "job_id": job_id,
        "fuels": ["electricity", "gas"],
        "mpan": "1600123456785",
        "mprn": "7654321012",
        "supply": "single_phase",
        "policy": "install_and_leave",
        "devices": _DEVICES,
    }
    doc.update(changes)
    return parse_job(doc, source=f"<demo job {job_id}>")


def _kit(port: Path, speed: float) -> KitConfig:
    return parse_kit_config(
        {
            "time_scale": speed,
            "hub": {"name": "hub", "port": str(port)},
            "wan": {"deadline_s": 120, "max_reconnects": 2},
            "han": {"deadline_s": 400, "join_window_s": 40, "join_attempts": 3},
            "poll": {
                "first_interval_s": 5,
                "max_interval_s": 20,
                "attempt_timeout_s": max(10.0, 4 * speed),
            },
        },
        source="<demo kit config>",
    )


@dataclass(frozen=True)
class DemoSite:
    title: str
    scenario: str | None
    job: Job
    dcc_notice: str | None = None


def demo_sites() -> list[DemoSite]:
    return [
        DemoSite("Everything comes up", "quick", _job("DEMO-1-quick")),
        DemoSite("No WAN signal, Install and Leave", "wan_never", _job("DEMO-2-no-wan")),
        DemoSite(
            "No WAN signal, supplier asked to abort",
            "wan_never",
            _job("DEMO-3-no-wan-abort", policy="abort_on_no_wan"),
        ),
        DemoSite(
            "DCC Service Centre notice mid-job",
            "wan_late",
            _job("DEMO-4-dcc-notice"),
            dcc_notice="30,2026-12-01T08:00:00Z",
        ),
        DemoSite(
            "Gas meter in the cellar, single band hub",
            "gsme_never_single_band",
            _job("DEMO-5-gas-out-of-reach"),
        ),
        DemoSite("CT-metered site", None, _job("DEMO-6-ct", supply="ct")),
    ]


async def _run_site(site: DemoSite, workdir: Path, speed: float, console: Console) -> str:
    link = workdir / f"hub-{site.job.job_id}"
    sim = None
    if site.scenario is not None:
        sim = HubSimulator(load_scenario(shipped_scenario(site.scenario)), link, speed=speed)
        await sim.start()
    try:
        kit = _kit(link, speed)
        view: LiveView | PlainView = (
            LiveView(console, site.job.job_id) if console.is_terminal else PlainView(sys.stdout)
        )
        sinks: list[ProgressSink] = [view]
        notice = ScheduledNotice.parse(site.dcc_notice) if site.dcc_notice else None
        try:
            run = await probe(
                site.job, kit, str(link), clock=make_clock(speed), sinks=sinks, notice=notice
            )
        finally:
            view.close()
        render_verdict(run.result, sys.stdout)
        doc = run.result
        code = f" [{doc.abort.code.value}]" if doc.abort is not None else ""
        return f"{site.title}: {doc.outcome.value}{code}"
    finally:
        if sim is not None:
            await sim.stop()


async def _show_hub(workdir: Path, speed: float) -> None:
    link = workdir / "hub-status"
    sim = HubSimulator(load_scenario(shipped_scenario("quick")), link, speed=speed)
    await sim.start()
    hub = HubClient(str(link), name="hub")
    await hub.start()
    try:
        await hub.wait_connected(5)
        await asyncio.sleep(0.3)  # let the simulated WAN attach
        render_snapshot(await read_snapshot(hub), sys.stdout)
    finally:
        await hub.stop()
        await sim.stop()


async def run_demo(speed: float) -> int:
    console = Console()
    print("gatewayd demo: a simulated commissioning kit (no hardware, no broker needed)")
    print(f"Site time runs {speed:g}x faster than real time.\n")
    print("== A simulated Comms Hub, read over its serial port (gatewayd hub status)")
    with tempfile.TemporaryDirectory(prefix="gatewayd-demo-") as tmp:
        workdir = Path(tmp)
        await _show_hub(workdir, speed)
        summary = []
        for n, site in enumerate(demo_sites(), 1):
            print(f"\n== Job {n}: {site.title}")
            summary.append(await _run_site(site, workdir, speed, console))
    print("\n== Verdicts")
    for line in summary:
        print(f"  {line}")
    print(
        "\nTry it by hand:\n"
        "  gatewayd sim hub --scenario quick --link /tmp/gatewayd-hub      (terminal 1)\n"
        "  gatewayd hub status --port /tmp/gatewayd-hub --watch            (terminal 2)\n"
        "  gatewayd probe --config examples/kit-sim.toml --job examples/jobs/dual-fuel.toml"
    )
    return 0


def main_demo(speed: float | None) -> int:
    try:
        return asyncio.run(run_demo(speed or DEFAULT_SPEED))
    except KeyboardInterrupt:
        return 130
