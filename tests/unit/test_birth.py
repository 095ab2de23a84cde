"""The birth: a rebirth republishes every result of the run, even one that finishes while it
does, and hubs are named by their names, never by their serial devices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatewayd.clock import SystemClock
from gatewayd.config.kit import parse_kit_config
from gatewayd.contract import Topics
from gatewayd.daemon.birth import Birth
from gatewayd.daemon.hubs import Hubs
from gatewayd.engine.result import ResultDocument
from gatewayd_drivers.commshub.client import LinkLost
from tests.unit.test_contract import _result
from tests.waiting import wait_until


class SlowLink:
    """Publishes by yielding to the loop, as a real PUBACK wait does; records the topics."""

    session = 3

    def __init__(self, on_publish: Any) -> None:
        self.topics: list[str] = []
        self._on_publish = on_publish

    async def publish_if_connected(self, topic: str, payload: bytes, *, retain: bool) -> None:
        self.topics.append(topic)
        self._on_publish(topic)


def _birth(link: SlowLink, results: Callable[[], dict[str, ResultDocument]] = dict) -> Birth:
    return Birth(
        kit_id="k",
        link=link,  # type: ignore[arg-type]
        clock=SystemClock(),
        topics=Topics("k"),
        hubs=[],  # type: ignore[arg-type]
        digest=lambda: "sha256:" + "0" * 64,
        rf_survey=False,
        results=results,
    )


async def test_a_result_that_arrives_during_a_rebirth_does_not_break_it() -> None:
    first = _result()
    results: dict[str, ResultDocument] = {first.job_id: first}
    late = first.model_copy(update={"job_id": "J-LATE"})

    def job_finishes_meanwhile(topic: str) -> None:
        if topic.endswith(f"/jobs/{first.job_id}/result"):
            results[late.job_id] = late

    link = SlowLink(job_finishes_meanwhile)
    birth = _birth(link, lambda: results)
    await birth.rebirth()
    assert f"gatewayd/k/jobs/{first.job_id}/result" in link.topics


async def test_rebirths_leave_no_task_behind() -> None:
    # Each rebirth's task stayed listed after it ended: 12,000 rebirths grew RSS by 27 MB.
    birth = _birth(SlowLink(lambda _topic: None))
    for _ in range(200):
        birth.rebirth_soon()
        birth.publish_soon()
    await wait_until(lambda: all(task.done() for task in birth._tasks))
    await asyncio.sleep(0)  # the tasks' done callbacks
    assert len(birth._tasks) == 0
    await birth.stop()


async def test_a_failed_rebirth_is_logged_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    def fail(_topic: str) -> None:
        raise RuntimeError("disk on fire")

    birth = _birth(SlowLink(fail))
    birth.rebirth_soon()
    await wait_until(lambda: birth.running == 0)
    assert "publishing the rebirth failed" in caplog.text and "disk on fire" in caplog.text
    await birth.stop()


class KeepingLink(SlowLink):
    """Keeps each payload by topic, too."""

    def __init__(self) -> None:
        super().__init__(lambda _topic: None)
        self.payloads: dict[str, Any] = {}

    async def publish_if_connected(self, topic: str, payload: bytes, *, retain: bool) -> None:
        await super().publish_if_connected(topic, payload, retain=retain)
        self.payloads[topic] = json.loads(payload)


async def test_the_birth_names_each_hub_never_its_serial_device(tmp_path: Path) -> None:
    # A by-id path holds the USB adapter's serial number ("A50285BI" here).
    port = str(tmp_path / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0")
    kit = parse_kit_config({"hub": {"name": "hub1", "port": port}, "mqtt": {"kit_id": "k"}})
    hubs = Hubs(
        kit.all_hubs,
        publisher=None,  # type: ignore[arg-type]
        topics=Topics("k"),
        job_on=lambda _hub: None,
        on_link_change=lambda _rt: asyncio.sleep(0),
    )
    # What the serial link says of a port it lost, as the availability's reason.
    [rt] = hubs
    rt.note(LinkLost(f"lost {port}: device reports readiness to read but returned no data"))
    link = KeepingLink()
    birth = Birth(
        kit_id="k",
        link=link,  # type: ignore[arg-type]
        clock=SystemClock(),
        topics=Topics("k"),
        hubs=hubs,
        digest=lambda: "sha256:" + "0" * 64,
        rf_survey=False,
        results=dict,
    )
    await birth.publish()
    info = link.payloads["gatewayd/k/info"]
    assert info["schema"] == "gatewayd.info/2"
    assert info["hubs"] == [{"name": "hub1", "baudrate": 115200}]
    availability = link.payloads["gatewayd/k/hubs/hub1/availability"]
    assert availability["state"] == "offline"
    assert availability["reason"] == (
        "lost <port of hub hub1>: device reports readiness to read but returned no data"
    )
    assert "A50285BI" not in json.dumps(link.payloads)
