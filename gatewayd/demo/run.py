"""`gatewayd demo`: a simulated kit, end to end, with nothing to install or plug in.

Shows one simulated Comms Hub's state as `gatewayd hub status` would, then runs the
kit as a kit runs: a simulated hub per site scenario on a pseudo-terminal, an MQTT
broker (embedded amqtt, unless ``--config`` names a real one), and the real daemon
(``gatewayd run``) with its metrics endpoint. A small back office in this process
sends one ``start_job`` per site over MQTT, a DCC notice to one of them, and prints
every step and verdict (with its abort code) as the kit publishes them. Site time runs
fast (the scenarios' speed) so the tour takes well under a minute.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import parse_job
from gatewayd.config.kit import KitConfig, load_kit_config, parse_kit_config
from gatewayd.config.mqtt import MqttConfig, SecretError
from gatewayd.daemon.service import Daemon
from gatewayd.demo.backoffice import BackOffice, SiteRun
from gatewayd.demo.broker import BrokerMissing, EmbeddedBroker, free_loopback_port
from gatewayd.engine.hub_snapshot import read_snapshot, render_snapshot
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario

DEFAULT_SPEED = 50.0

_DEVICES = [
    {"eui64": f"00-DB-12-34-56-78-90-{suffix}", "type": dtype, "install_code": code}
    for suffix, dtype, code in (
        ("A1", "ESME", "3F1A9C0E5B7D2468ACE013579BDF0246"),
        ("A2", "GSME", "8E2C4A6F1B3D5079E1C3A5F7092B4D6E"),
        ("A3", "IHD", "C0FFEE1234567890ABCDEF0123456789"),
    )
]


def _job(job_id: str, **changes: Any) -> dict[str, Any]:
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
    parse_job(doc, source=f"<demo job {job_id}>")  # a demo job must be a valid job
    return doc


KIT_ID = "demo-kit"


def _kit(
    links: list[tuple[str, Path]], speed: float, mqtt: dict[str, Any], metrics_port: int
) -> KitConfig:
    return parse_kit_config(
        {
            "time_scale": speed,
            "hubs": [{"name": name, "port": str(link)} for name, link in links],
            "wan": {"deadline_s": 120, "max_reconnects": 2},
            "han": {"deadline_s": 400, "join_window_s": 40, "join_attempts": 3},
            "poll": {
                "first_interval_s": 5,
                "max_interval_s": 20,
                "attempt_timeout_s": max(10.0, 4 * speed),
            },
            "mqtt": mqtt,
            "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        },
        source="<demo kit config>",
    )


@dataclass(frozen=True)
class DemoSite:
    title: str
    scenario: str
    job: dict[str, Any]
    dcc_after_s: float | None = None  # site seconds into the job; the back office sends it


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
            dcc_after_s=30,
        ),
        DemoSite(
            "Gas meter in the cellar, single band hub",
            "gsme_never_single_band",
            _job("DEMO-5-gas-out-of-reach"),
        ),
        DemoSite("CT-metered site", "quick", _job("DEMO-6-ct", supply="ct")),
    ]


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


async def _serving(daemon: Daemon, task: asyncio.Task[None]) -> None:
    """Wait until the daemon serves; raise what stopped it if it failed to start."""
    ready = asyncio.create_task(daemon.serving.wait())
    await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        task.result()
        raise RuntimeError("the daemon stopped before it served")


def _mqtt_table(
    configured: MqttConfig | None, broker: EmbeddedBroker | None, state_dir: Path
) -> dict[str, Any]:
    if configured is not None:
        doc = configured.model_dump(mode="json", exclude_none=True)
        doc["state_dir"] = str(state_dir)  # never touch a real kit's outbox
        return doc
    assert broker is not None
    return {
        "kit_id": KIT_ID,
        "host": broker.host,
        "port": broker.port,
        "protocol": "3.1.1",  # amqtt speaks MQTT 3.1.1 only
        "state_dir": str(state_dir),
        "reconnect_first_s": 0.2,
        "reconnect_max_s": 2,
    }


async def run_demo(
    speed: float, configured: MqttConfig | None = None, metrics_port: int | None = None
) -> int:
    print("gatewayd demo: a simulated commissioning kit (no hardware needed)")
    print(f"Site time runs {speed:g}x faster than real time.\n")
    print("== A simulated Comms Hub, read over its serial port (gatewayd hub status)")
    sites = demo_sites()
    with tempfile.TemporaryDirectory(prefix="gatewayd-demo-") as tmp:
        workdir = Path(tmp)
        await _show_hub(workdir, speed)
        sims = [
            HubSimulator(
                load_scenario(shipped_scenario(site.scenario)), workdir / f"hub-{n}", speed=speed
            )
            for n, site in enumerate(sites, 1)
        ]
        broker = EmbeddedBroker() if configured is None else None
        started: list[HubSimulator] = []
        try:
            for sim in sims:
                await sim.start()
                started.append(sim)
            if broker is not None:
                await broker.start()
            kit = _kit(
                [(f"site{n}", workdir / f"hub-{n}") for n in range(1, len(sites) + 1)],
                speed,
                _mqtt_table(configured, broker, workdir / "state"),
                metrics_port or free_loopback_port(),
            )
            assert kit.mqtt is not None
            daemon = Daemon(kit, config_bytes=b"# gatewayd demo kit config\n")
            office = BackOffice(kit.mqtt, speed)
            where = (
                f"the embedded broker at {kit.mqtt.host}:{kit.mqtt.effective_port} (MQTT 3.1.1)"
                if broker is not None
                else f"the broker at {kit.mqtt.host}:{kit.mqtt.effective_port}"
            )
            assert daemon.metrics_server is not None
            print(f"\n== The kit: gatewayd run with {len(sites)} simulated hubs, publishing to")
            print(f"   {where}")
            print(
                f"   Watch it:  mosquitto_sub -h {kit.mqtt.host} -p {kit.mqtt.effective_port}"
                f" -t '{office.topics.base}/#' -v"
            )
            daemon_task = asyncio.create_task(daemon.run(), name="demo daemon")
            try:
                await _serving(daemon, daemon_task)
                print(f"   Metrics:   curl -s {daemon.metrics_server.url}")
                print("\n== Jobs sent by a back office over MQTT (request/start_job)")
                runs = [
                    SiteRun(f"site{n}", site.title, site.job, site.dcc_after_s)
                    for n, site in enumerate(sites, 1)
                ]
                results = await office.run_jobs(runs)
                print("\n== Metrics, scraped from the kit's endpoint")
                for line in await office.scrape(daemon.metrics_server.url):
                    print(f"  {line}")
            finally:
                daemon.request_stop()
                await daemon_task
        except (aiomqtt.MqttError, OSError, BrokerMissing) as exc:
            print(f"gatewayd demo: {exc}", file=sys.stderr)
            return 1
        finally:
            if broker is not None:
                await broker.stop()
            for sim in started:
                await sim.stop()
    print("\n== Verdicts")
    for line in results:
        print(f"  {line}")
    print(
        "\nTry it by hand:\n"
        "  gatewayd sim hub --scenario quick --link /tmp/gatewayd-hub      (terminal 1)\n"
        "  gatewayd hub status --port /tmp/gatewayd-hub --watch            (terminal 2)\n"
        "  gatewayd probe --config examples/kit-sim.toml --job examples/jobs/dual-fuel.toml"
    )
    return 0


def main_demo(
    speed: float | None, *, config: Path | None = None, metrics_port: int | None = None
) -> int:
    configured: MqttConfig | None = None
    if config is not None:
        try:
            kit = load_kit_config(config)
        except ConfigError as exc:
            print(f"gatewayd demo: invalid kit config:\n{exc}", file=sys.stderr)
            return 2
        if kit.mqtt is None:
            print(f"gatewayd demo: {config}: mqtt: required to name a broker", file=sys.stderr)
            return 2
        try:
            # The back office connects with the kit's password too: one it cannot read is
            # said now, not after the simulated kit has started.
            kit.mqtt.read_password()
        except SecretError as exc:
            print(f"gatewayd demo: {config}: {exc}", file=sys.stderr)
            return 2
        configured = kit.mqtt
    try:
        return asyncio.run(run_demo(speed or DEFAULT_SPEED, configured, metrics_port))
    except KeyboardInterrupt:
        return 130
