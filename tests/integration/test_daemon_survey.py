"""The daemon's RF surveys over a real mosquitto: request/survey in, the survey out, and a
later job's verdict quoting it (the dual-band advice end to end over MQTT)."""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd.config.kit import parse_kit_config
from gatewayd.daemon.service import Daemon
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from gatewayd_sim.znp.radio import ZnpSimulator
from gatewayd_sim.znp.scenario import load_radio_scenario, shipped_radio_scenario
from tests.integration.test_daemon_mqtt import PREFIX, Subscriber, daemon_online, retained
from tests.mqtt_broker import Broker

SPEED = 50
ROOT = Path(__file__).resolve().parents[2]
HUB_EUI = "00-DB-12-34-56-78-90-A0"
GSME = "00-DB-12-34-56-78-90-A2"


@dataclass
class Rig:
    broker: Broker
    sub: Subscriber
    daemon: Daemon
    radio: ZnpSimulator


@contextlib.asynccontextmanager
async def make_rig(
    tmp_path: Path, hub_scenario: str, radio_scenario: str, *, with_radio: bool = True
) -> AsyncIterator[Rig]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    hub = HubSimulator(load_scenario(shipped_scenario(hub_scenario)), tmp_path / "hub", speed=SPEED)
    radio = ZnpSimulator(
        load_radio_scenario(shipped_radio_scenario(radio_scenario)), tmp_path / "radio"
    )
    await hub.start()
    await radio.start()
    doc: dict[str, Any] = {
        "time_scale": SPEED,
        "hub": {"name": "hub1", "port": str(tmp_path / "hub")},
        "survey": {"scan_duration": 0, "store_dir": str(tmp_path / "surveys")},
        "wan": {"deadline_s": 300},
        "han": {"deadline_s": 300, "join_window_s": 40, "join_attempts": 2},
        "poll": {"first_interval_s": 5, "max_interval_s": 20, "attempt_timeout_s": 200},
        "mqtt": {
            "kit_id": "kit-1",
            "host": broker.host,
            "port": broker.port,
            "state_dir": str(tmp_path / "state"),
        },
        "metrics": {"listen": "127.0.0.1:0"},  # a free port, beside other tests and kits
    }
    if with_radio:
        doc["radio"] = {"port": str(tmp_path / "radio")}
    kit = parse_kit_config(doc, source="test kit")
    try:
        async with daemon_online(kit, broker) as (sub, daemon):
            yield Rig(broker, sub, daemon, radio)
    finally:
        await radio.stop()
        await hub.stop()
        broker.stop()


def gas_job(job_id: str) -> dict[str, Any]:
    doc = tomllib.loads((ROOT / "examples" / "jobs" / "gas-only.toml").read_text())
    doc["job_id"] = job_id
    return doc


async def test_a_survey_request_is_published_and_backs_the_dual_band_advice(
    tmp_path: Path,
) -> None:
    async with make_rig(tmp_path, "gsme_never_single_band", "gas_meter_not_heard") as rig:
        info = await rig.sub.wait_for(lambda s: s.topic == f"{PREFIX}/info")
        assert "rf_survey" in info.body["capabilities"] and "survey" in info.body["requests"]
        rsp = await rig.sub.request(
            "survey", {"transaction": "s-1", "position": GSME.lower()}, timeout=10
        )
        assert rsp["ok"] and rsp["position"] == GSME and rsp["survey_topic"] == f"{PREFIX}/survey"
        busy = await rig.sub.request("survey", {"transaction": "s-2", "position": "at_hub"})
        assert not busy["ok"] and busy["error"]["code"] == "radio_busy"
        msg = await rig.sub.wait_for(lambda s: s.topic == f"{PREFIX}/survey", timeout=30)
        body = msg.body
        assert body["schema"] == "gatewayd.survey/1" and body["transaction"] == "s-1"
        assert body["ok"] and body["error"] is None
        survey = body["survey"]
        # No hub_eui64 in the request: the kit asked its hub for its EUI-64.
        assert survey["hub_eui64"] == HUB_EUI
        assert survey["judgement"] == "not_heard"
        assert (await retained(rig.broker, f"{PREFIX}/survey"))["transaction"] == "s-1"

        started = await rig.sub.request(
            "start_job", {"transaction": "j-1", "job": gas_job("JOB-SURVEY-1")}
        )
        assert started["ok"], started
        topic = f"{PREFIX}/jobs/JOB-SURVEY-1/result"
        result = (await rig.sub.wait_for(lambda s: s.topic == topic, timeout=60)).body
        assert [a["action"] for a in result["next_actions"]] == [
            "monitor_and_reinstruct",
            "fit_dual_band_hub",
        ]
        (advice,) = result["abort"]["evidence"]["dual_band_advice"]
        assert advice["basis"] == "survey_not_heard"
        gsme = next(d for d in result["han"]["devices"] if d["eui64"] == GSME)
        assert gsme["survey_evidence"]["source"] == "stored"
        events = rig.sub.on(f"{PREFIX}/jobs/JOB-SURVEY-1/events")
        assert any("RF survey at the GSME" in e["message"] for e in events)


async def test_a_survey_on_an_unplugged_radio_says_why(tmp_path: Path) -> None:
    async with make_rig(tmp_path, "quick", "site_good") as rig:
        rig.radio.unplug()
        rsp = await rig.sub.request(
            "survey", {"transaction": "s-9", "position": "at_hub", "hub_eui64": HUB_EUI}
        )
        assert rsp["ok"]
        msg = await rig.sub.wait_for(lambda s: s.topic == f"{PREFIX}/survey", timeout=30)
        assert not msg.body["ok"] and msg.body["survey"] is None
        assert "cannot open the radio's port" in msg.body["error"]


async def test_a_kit_without_a_radio_refuses_surveys(tmp_path: Path) -> None:
    async with make_rig(tmp_path, "quick", "site_good", with_radio=False) as rig:
        rsp = await rig.sub.request("survey", {"transaction": "s-3", "position": "at_hub"})
        assert not rsp["ok"] and rsp["error"]["code"] == "no_radio"
        bad = await rig.sub.request("survey", {"transaction": "s-4", "position": "a cellar"})
        assert bad["error"]["code"] == "invalid_request" and "position" in bad["error"]["reason"]
