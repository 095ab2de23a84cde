"""Only live messages act; every request gets an answer (a real mosquitto, the daemon in-process).

A retained request or DCC notice is what a broker hands to every new subscription, so it
would act again after each reconnect of the kit; an empty payload only clears a retained
topic. Both are ignored. A command that is no safe topic level is still answered, on a fixed
topic, and never reaches a log line unquoted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import pytest

from gatewayd.logfmt import KeyValueFormatter
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from tests.integration.test_daemon_mqtt import (
    PREFIX,
    SPEED,
    Subscriber,
    daemon_online,
    job_doc,
    make_rig,
    rig_kit,
)
from tests.mqtt_broker import Broker

MPAN = "1600123456785"  # the MPAN of examples/jobs/dual-fuel.toml


async def logged(caplog: pytest.LogCaptureFixture, pred: Callable[[str], bool]) -> str:
    """The first formatted log line that ``pred`` accepts, waiting for it."""
    formatter = KeyValueFormatter()
    async with asyncio.timeout(30):
        while True:
            for record in caplog.records:
                line = formatter.format(record)
                if pred(line):
                    return line
            await asyncio.sleep(0.02)


async def answered_after(sub: Subscriber, start: int) -> list[str]:
    """Topics of the responses seen since ``start``, once a live status request has been
    answered: the kit handles its messages in order, so anything sent before it is settled."""
    status = await sub.request("status", {"transaction": "fence"})
    assert status["ok"] is True
    return [s.topic for s in sub.seen[start:] if "/response/" in s.topic]


async def test_a_retained_start_job_is_ignored_at_startup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatewayd")
    broker = Broker(tmp_path / "broker")
    broker.start()
    sim = HubSimulator(load_scenario(shipped_scenario("quick")), tmp_path / "hub", speed=SPEED)
    await sim.start()
    try:
        # Left on the broker by a back office that published it retained, days ago.
        async with aiomqtt.Client(broker.host, broker.port, identifier="old-office") as c:
            stale = {"transaction": "stale", "job": job_doc("J-OLD")}
            await c.publish(
                f"{PREFIX}/request/start_job", json.dumps(stale).encode(), qos=1, retain=True
            )
        async with daemon_online(rig_kit(tmp_path, broker), broker) as (sub, _):
            line = await logged(caplog, lambda t: "retained message ignored" in t)
            assert f'topic="{PREFIX}/request/start_job"' in line
            assert await answered_after(sub, 0) == [f"{PREFIX}/response/status"]
            assert not sub.on(f"{PREFIX}/jobs/J-OLD/result")
            assert not [s for s in sub.seen if s.topic.startswith(f"{PREFIX}/jobs/J-OLD/")]
    finally:
        await sim.stop()
        broker.stop()


async def test_a_retained_dcc_notice_replayed_on_reconnect_aborts_no_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatewayd")
    async with make_rig(tmp_path, "wan_never", persistent_broker=True) as rig:
        sub = rig.sub
        assert sub.client is not None
        notice = {
            "reference": "DCC-OLD",
            "received_at": "2026-11-23T10:00:00Z",
            "not_before": "2026-12-01T08:00:00Z",
            "mpans": [MPAN],
        }
        # Published retained by mistake while no job ran: it concerned nothing then.
        await sub.client.publish(
            f"{PREFIX}/dcc/notice", json.dumps(notice).encode(), qos=1, retain=True
        )
        await logged(caplog, lambda t: "DCC notice concerns no running job" in t)
        start = await sub.request("start_job", {"transaction": "t", "job": job_doc("J-NEW")})
        assert start["ok"] is True
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-NEW/events")
        # The broker restarts with its retained messages: on the kit's resubscription it hands
        # the old notice over again, while J-NEW, at the same MPAN, is still probing the WAN.
        rig.broker.stop()
        rig.broker.start()
        line = await logged(caplog, lambda t: "retained message ignored" in t)
        assert f'topic="{PREFIX}/dcc/notice"' in line
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-NEW/result", 60)
        assert result.body["dcc_notice"] is None
        assert result.body["outcome"] == "installed_no_wan"


async def test_an_empty_payload_is_ignored_quietly(tmp_path: Path) -> None:
    async with make_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        assert sub.client is not None
        start = len(sub.seen)
        # What a back office sends to clear a retained request by mistake.
        await sub.client.publish(f"{PREFIX}/request/start_job", b"", qos=1)
        await sub.client.publish(f"{PREFIX}/dcc/notice", b"", qos=1)
        assert await answered_after(sub, start) == [f"{PREFIX}/response/status"]


async def test_a_command_that_is_no_topic_level_is_answered_on_request_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatewayd")
    async with make_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        assert sub.client is not None
        command = "launch level=error job=J-9"
        body = {"transaction": "odd-1"}
        await sub.client.publish(f"{PREFIX}/request/{command}", json.dumps(body).encode(), qos=1)
        seen = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/request_errors")
        assert seen.body["ok"] is False and seen.body["transaction"] == "odd-1"
        assert seen.body["error"]["code"] == "unknown_command"
        line = await logged(caplog, lambda t: "request refused" in t)
        # The raw name stays one quoted value: it cannot add level= or job= fields.
        assert 'command="launch level=error job=J-9"' in line
        keys = [key for key, _ in re.findall(r'(?:^| )([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', line)]
        assert keys.count("level") == 1 and "job" not in keys, keys
