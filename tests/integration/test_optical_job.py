"""The meter type check with an optical probe: the job reads the simulated meter first.

A hub simulator and a meter simulator run on their own ptys; the real engine runs the job
against both. The meter on the wall beats the job's supply; a disagreement is in the
result and in the progress; an unreadable or undecidable meter leaves the job's value.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatewayd.clock import ScaledClock
from gatewayd.config.job import parse_job
from gatewayd.config.kit import parse_kit_config
from gatewayd.engine.commissioning import JobRun, run_job
from gatewayd.engine.progress import Progress, Stage
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from gatewayd_sim.optical.meter import OpticalMeterSim
from gatewayd_sim.optical.profile import Faults, load_meter, shipped_meter

SPEED = 50
JOBS = Path(__file__).resolve().parents[2] / "examples" / "jobs"
ALL_VARIANTS = ["single_phase", "polyphase", "twin_element"]


@dataclass
class Rig:
    tmp: Path
    hub_sim: HubSimulator | None = None
    meter_sim: OpticalMeterSim | None = None
    progress: list[Progress] = field(default_factory=list)

    async def run(
        self,
        meter: str | None,
        job_file: str = "dual-fuel",
        *,
        variants: list[str] | None = None,
        optical: dict[str, Any] | None = None,
        **job_changes: Any,
    ) -> JobRun:
        hub_link = self.tmp / "hub"
        probe_link = self.tmp / "probe"
        if self.hub_sim is None:
            self.hub_sim = HubSimulator(
                load_scenario(shipped_scenario("quick")), hub_link, speed=SPEED
            )
            await self.hub_sim.start()
        if meter is not None and self.meter_sim is None:
            self.meter_sim = OpticalMeterSim(load_meter(shipped_meter(meter)), probe_link)
            await self.meter_sim.start()
        kit = parse_kit_config(
            {
                "time_scale": SPEED,
                "hub": {"port": str(hub_link)},
                "van": {"electricity_variants": variants or ALL_VARIANTS},
                "poll": {"attempt_timeout_s": 200},
                "optical": {"port": str(probe_link), **(optical or {})},
            }
        )
        data = tomllib.loads((JOBS / f"{job_file}.toml").read_text())
        data.update(job_changes)
        job = parse_job(data)
        hub = HubClient(str(hub_link))
        await hub.start()
        try:
            return await run_job(
                job, kit, hub, clock=ScaledClock(SPEED), sinks=[self.progress.append]
            )
        finally:
            await hub.stop()

    def meter_notes(self) -> list[Progress]:
        return [p for p in self.progress if p.stage is Stage.METER_TYPE]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        if r.meter_sim is not None:
            await r.meter_sim.stop()
        if r.hub_sim is not None:
            await r.hub_sim.stop()


async def test_polyphase_meter_beats_a_single_phase_job(rig: Rig) -> None:
    run = await rig.run("polyphase", supply="single_phase")
    mt = run.result.meter_type
    assert (mt.supply, mt.source, mt.job_supply, mt.mismatch) == (
        "polyphase",
        "meter",
        "single_phase",
        True,
    )
    assert mt.needed_variant == "polyphase" and mt.available
    assert mt.note is not None and "polyphase" in mt.note and "single_phase" in mt.note
    assert mt.meter is not None and mt.meter.read
    assert (mt.meter.manufacturer, mt.meter.identification) == ("LGZ", "ZMD3104")
    assert mt.meter.rule == "three live phases" and mt.meter.baudrate == 19200
    assert run.result.outcome == "commissioned"
    # Published as progress too, with the facts in the event's data.
    mismatch = [p for p in rig.meter_notes() if p.data.get("mismatch")]
    assert len(mismatch) == 1
    assert mismatch[0].data["supply"] == "polyphase"
    assert mismatch[0].data["job_supply"] == "single_phase"
    # and in the JSON the outbox publishes
    doc = run.result.model_dump(mode="json")
    assert doc["meter_type"]["mismatch"] is True
    assert doc["meter_type"]["meter"]["supply"] == "polyphase"


async def test_ct_meter_aborts_a_job_that_said_single_phase(rig: Rig) -> None:
    run = await rig.run("ct_operated", supply="single_phase")
    assert run.result.outcome == "aborted"
    assert run.result.abort is not None
    assert run.result.abort.code == "SMETS_METER_TYPE_NOT_AVAILABLE"
    assert [a.action for a in run.result.next_actions] == ["install_amr"]
    assert run.result.meter_type.ct and run.result.meter_type.mismatch
    assert run.result.wan is None  # the hub was never needed
    meter = run.result.meter_type.meter
    assert meter is not None and any("CT ratio 200/5" in e for e in meter.evidence)


async def test_twin_element_meter_needs_a_variant_the_van_lacks(rig: Rig) -> None:
    run = await rig.run(
        "twin_element", supply="single_phase", variants=["single_phase", "polyphase"]
    )
    assert run.result.outcome == "aborted"
    assert run.result.meter_type.needed_variant == "twin_element"
    assert [a.action for a in run.result.next_actions] == ["wait_for_variant", "install_amr"]


async def test_meter_that_agrees_with_the_job(rig: Rig) -> None:
    run = await rig.run("single_phase_credit")
    mt = run.result.meter_type
    assert (mt.supply, mt.source, mt.mismatch, mt.note) == ("single_phase", "meter", False, None)
    assert run.result.outcome == "commissioned"


async def test_unreadable_meter_falls_back_to_the_job_with_a_note(rig: Rig) -> None:
    run = await rig.run("fault_garbled_identification", supply="polyphase")
    mt = run.result.meter_type
    assert (mt.supply, mt.source, mt.mismatch) == ("polyphase", "job", False)
    assert mt.meter is not None and not mt.meter.read
    assert mt.meter.error is not None and mt.meter.error.startswith("identification")
    assert mt.note is not None and "could not be read" in mt.note and "polyphase" in mt.note
    assert any("could not be read" in p.message for p in rig.meter_notes())
    assert run.result.outcome == "commissioned"


async def test_no_meter_at_the_probe_falls_back_to_the_job(rig: Rig) -> None:
    run = await rig.run(None)  # nothing behind the probe's port
    mt = run.result.meter_type
    assert mt.source == "job" and mt.meter is not None and not mt.meter.read
    assert mt.meter.error is not None and "no serial port" in mt.meter.error
    assert run.result.outcome == "commissioned"


async def test_undecidable_readout_keeps_the_job_value(rig: Rig) -> None:
    run = await rig.run("no_phase_registers", supply="twin_element")
    mt = run.result.meter_type
    assert (mt.supply, mt.source) == ("twin_element", "job")
    assert mt.meter is not None and mt.meter.read and mt.meter.supply is None
    assert mt.note is not None and "does not show" in mt.note


async def test_battery_meter_read_with_the_kit_wake_up(rig: Rig) -> None:
    run = await rig.run("battery", optical={"wake_up": True}, supply="polyphase")
    mt = run.result.meter_type
    assert (mt.supply, mt.source, mt.mismatch) == ("single_phase", "meter", True)


async def test_gas_only_job_does_not_read_the_meter(rig: Rig) -> None:
    run = await rig.run("polyphase", "gas-only")
    assert run.result.meter_type.applicable is False
    assert run.result.meter_type.meter is None
    assert rig.meter_sim is not None and rig.meter_sim.events == []


async def test_cancel_during_the_meter_read_cancels_the_job(rig: Rig, tmp_path: Path) -> None:
    # A meter that takes 2.5 s to answer; the installer cancels after 0.3 s.
    profile = load_meter(shipped_meter("ct_operated")).model_copy(
        update={"faults": Faults(slow_answer_s=2.5)}
    )
    rig.meter_sim = OpticalMeterSim(profile, tmp_path / "probe")
    await rig.meter_sim.start()
    cancel = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, cancel.set)
    rig.hub_sim = HubSimulator(load_scenario(shipped_scenario("quick")), tmp_path / "hub")
    await rig.hub_sim.start()
    kit = parse_kit_config(
        {"hub": {"port": str(tmp_path / "hub")}, "optical": {"port": str(tmp_path / "probe")}}
    )
    job = parse_job(tomllib.loads((JOBS / "dual-fuel.toml").read_text()))
    hub = HubClient(str(tmp_path / "hub"))
    await hub.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = await run_job(job, kit, hub, clock=ScaledClock(1), cancel=cancel)
        assert loop.time() - started < 2.0  # the read did not run its course
    finally:
        await hub.stop()
    assert run.result.outcome == "cancelled"
    mt = run.result.meter_type
    assert mt.source == "job" and mt.meter is not None and not mt.meter.read
    assert mt.meter.error == "the job was stopped during the read"
