"""The job against a hub that stops answering for a while: the engine, the real client, a pty.

Domain rule "a silent hub": one unanswered request is line noise and is retried; only a
silence (three requests in a row unanswered, or 10 s without a frame while one waits) ends
the job, and then ``failed``. The end-to-end runs of ``silent_han`` and ``silent_wan`` are
in tests/e2e; here the silence is placed exactly, at the job's first request.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from gatewayd.clock import ScaledClock
from gatewayd.config.job import parse_job
from gatewayd.config.kit import parse_kit_config
from gatewayd.engine.commissioning import JobRun, run_job
from gatewayd.engine.verdict import Outcome
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario

SPEED = 50
JOBS = Path(__file__).resolve().parents[2] / "examples" / "jobs"


async def run_with_silence(tmp_path: Path, silent_real_s: float) -> tuple[JobRun, HubClient]:
    link = tmp_path / "hub"
    sim = HubSimulator(load_scenario(shipped_scenario("quick")), link, speed=SPEED)
    await sim.start()
    kit = parse_kit_config(
        {"time_scale": SPEED, "hub": {"port": str(link)}, "poll": {"attempt_timeout_s": 200}}
    )
    job = parse_job(tomllib.loads((JOBS / "dual-fuel.toml").read_text()))
    hub = HubClient(str(link))
    await hub.start()
    try:
        assert await hub.wait_connected(10)
        sim.go_silent(silent_real_s * SPEED)  # site seconds
        return await run_job(job, kit, hub, clock=ScaledClock(SPEED)), hub
    finally:
        await hub.stop()
        await sim.stop()


async def test_one_unanswered_identification_is_retried_not_failed(tmp_path: Path) -> None:
    # Quiet for 3.5 s: the first GET_INFO times out once (3 s with its resends), then the hub
    # answers the next one.
    run, hub = await run_with_silence(tmp_path, 3.5)
    assert hub.stats.timeouts >= 1 and hub.stats.silences == 0
    assert run.verdict.outcome is Outcome.COMMISSIONED, run.facts.ending


async def test_a_hub_silent_from_the_start_fails_at_the_hub_stage(tmp_path: Path) -> None:
    run, hub = await run_with_silence(tmp_path, 60)
    assert run.verdict.outcome is Outcome.FAILED
    assert run.result.failure is not None and run.result.failure.stage == "hub"
    assert "went unanswered" in run.result.failure.reason
    assert hub.stats.silences == 1
