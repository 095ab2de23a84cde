"""End to end: every site scenario through the real `gatewayd probe` CLI over a pty.

The hub simulator runs in the test's event loop; the CLI runs as its own
process, exactly as an installer starts it, and talks to the simulator through
the pty's stable link. Site time runs 50 times faster than real time on both
sides (the scenarios' speed and the kit config's time_scale).

The site's story starts with the simulator, so the simulator starts once the CLI
is under way (waiting for the hub's port): a CLI that takes two seconds to start on
a loaded machine would otherwise meet a hub a hundred site seconds into its story.
A fault that must strike at a point of the job (a cable pull, a restart during the
HAN probe) is struck when the hub has seen that point, not at a site time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatewayd_drivers.commshub.messages import Cmd
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import Scenario, load_scenario, shipped_scenario
from tests.waiting import wait_until

SPEED = 50
ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "examples" / "jobs"

KIT = """
time_scale = {speed}
[hub]
port = "{port}"
[van]
electricity_variants = {variants}
[wan]
deadline_s = {wan_deadline}
reconnect_after_searching_s = 400
max_reconnects = 2
[han]
deadline_s = 400
join_window_s = 40
join_attempts = 3
[poll]
first_interval_s = 5
max_interval_s = 20
attempt_timeout_s = 200
"""


@dataclass
class Run:
    code: int
    doc: dict[str, Any]
    stderr: str


@dataclass
class Site:
    tmp: Path
    link: Path
    sim: HubSimulator | None = None


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    s = Site(tmp_path, tmp_path / "hub")
    try:
        yield s
    finally:
        if s.sim is not None:
            await s.sim.stop()


def write_job(tmp: Path, base: str, **changes: str) -> Path:
    """An example job with some top-level keys replaced (values are TOML literals)."""
    lines = (JOBS / f"{base}.toml").read_text().splitlines()
    out = []
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if key in changes:
            out.append(f"{key} = {changes.pop(key)}")
        else:
            out.append(line)
    head = [f"{k} = {v}" for k, v in changes.items() if not k.startswith("[")]
    tables = [f"{k}\n{v}" for k, v in changes.items() if k.startswith("[")]
    path = tmp / f"job-{base}.toml"
    path.write_text("\n".join(head + out + tables) + "\n")
    return path


async def spawn_probe(kit: Path, job: Path, *extra: str) -> asyncio.subprocess.Process:
    """`gatewayd probe --json` as its own process, as an installer would start it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "probe", "--config", str(kit), "--job", str(job),
        "--json", *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


Fault = Callable[[HubSimulator], Awaitable[None]]


async def read_stderr_until(proc: asyncio.subprocess.Process, marker: bytes) -> bytes:
    """The CLI's stderr up to and including the first line with ``marker`` (or to its end)."""
    assert proc.stderr is not None
    seen = b""
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        seen += line
        if not line or marker in line:
            return seen


async def probe(
    site: Site,
    scenario: str | Scenario | None,
    job: Path,
    *extra: str,
    variants: str = '["single_phase", "polyphase", "twin_element"]',
    wan_deadline: int = 300,
    fault: Fault | None = None,
) -> Run:
    """Run the CLI on a job; the hub (when there is a scenario) starts once the CLI waits for it.

    ``fault``, if given, runs beside the job with the started simulator.
    """
    kit = site.tmp / "kit.toml"
    kit.write_text(
        KIT.format(speed=SPEED, port=site.link, variants=variants, wan_deadline=wan_deadline)
    )
    proc = await spawn_probe(kit, job, *extra)
    head = b""
    striking: asyncio.Task[None] | None = None
    if scenario is not None:
        if isinstance(scenario, str):
            scenario = load_scenario(shipped_scenario(scenario))
        head = await read_stderr_until(proc, b"Connecting to the hub")
        site.sim = HubSimulator(scenario, site.link, speed=SPEED)
        await site.sim.start()
        if fault is not None:
            striking = asyncio.create_task(fault(site.sim))
    try:
        out, tail = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if striking is not None and not striking.done():
            striking.cancel()
    if striking is not None and not striking.cancelled():
        striking.result()  # a fault that failed fails the test with its own error
    err = head + tail
    assert proc.returncode is not None
    stdout = out.decode()
    try:
        doc = json.loads(stdout)  # exactly one JSON document, nothing else
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document:\n{stdout}\nstderr:\n{err.decode()}")
    return Run(proc.returncode, doc, err.decode())


def without_timed_faults(name: str) -> Scenario:
    """A shipped scenario without its cable pulls and restarts at fixed site times."""
    scenario = load_scenario(shipped_scenario(name))
    faults = scenario.faults.model_copy(update={"cable_pull": [], "restart": []})
    return scenario.model_copy(update={"faults": faults})


async def devices_added(sim: HubSimulator, count: int) -> None:
    """Until the hub has added ``count`` devices: the HAN probe is under way, none joined yet.

    The devices join some site seconds after their add, on timers of this same event loop,
    which come due after this wait's short polls: so whatever strikes next strikes first.
    """
    await wait_until(lambda: sim.executed[Cmd.DEVICE_LOG_ADD] >= count, timeout=60)


def actions(run: Run) -> list[str]:
    return [a["action"] for a in run.doc["next_actions"]]


def device(run: Run, dtype: str) -> dict[str, Any]:
    matches = [d for d in run.doc["han"]["devices"] if d["type"] == dtype]
    assert len(matches) == 1
    return matches[0]


def dual_fuel(site: Site, **changes: str) -> Path:
    return write_job(site.tmp, "dual-fuel", **changes)


Check = Callable[[Run], None]


async def test_wan_quick_all_devices_join_first_time(site: Site) -> None:
    run = await probe(site, "quick", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert run.doc["abort"] is None and run.doc["next_actions"] == []
    assert run.doc["wan"]["established"] is True
    for dtype in ("ESME", "GSME", "IHD"):
        d = device(run, dtype)
        assert d["joined"] is True and d["attempts"] == 1
        assert d["lqi"] is not None and d["band"] == "2.4ghz"
    assert "joined after" in run.stderr  # progress went to stderr


async def test_wan_late_but_inside_the_deadline(site: Site) -> None:
    run = await probe(site, "wan_late", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    wan = run.doc["wan"]
    assert wan["time_to_connected_s"] > 60
    assert wan["time_to_registered_s"] <= wan["time_to_connected_s"]
    assert len(wan["rssi_trail"]) >= 2  # the signal improved along the way


async def test_wan_never_install_and_leave(site: Site) -> None:
    run = await probe(site, "wan_never", dual_fuel(site), wan_deadline=100)
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "installed_no_wan"
    assert run.doc["abort"] is None
    assert run.doc["wan"]["established"] is False
    assert run.doc["wan"]["final_state"] == "searching"
    assert run.doc["han"]["probed"] is False
    assert all(not d["probed"] for d in run.doc["han"]["devices"])


async def test_wan_never_abort_on_no_wan(site: Site) -> None:
    job = dual_fuel(site, policy='"abort_on_no_wan"')
    run = await probe(site, "wan_never", job, wan_deadline=100)
    assert run.code == 3, run.stderr
    assert run.doc["outcome"] == "aborted"
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_WAN"
    assert run.doc["abort"]["title"] == "Unable to Establish WAN - Meter Not Installed"
    assert actions(run) == ["monitor_wan_and_reinstruct"]


async def test_dcc_notice_before_the_wan_probe(site: Site) -> None:
    run = await probe(site, "quick", dual_fuel(site), "--dcc-notice", "0,2026-12-01T08:00:00Z")
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_WAN"
    assert actions(run) == ["rebook_when_dcc_resumes"]
    assert run.doc["next_actions"][0]["not_before"].startswith("2026-12-01T08:00:00")
    assert run.doc["han"]["probed"] is False, run.stderr
    assert "join window" not in run.stderr  # the probes really stopped


async def test_dcc_notice_during_the_wan_probe_wins(site: Site) -> None:
    run = await probe(site, "wan_never", dual_fuel(site), "--dcc-notice", "40", wan_deadline=300)
    assert run.code == 3, run.stderr
    assert run.doc["outcome"] == "aborted"
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_WAN"
    assert actions(run) == ["rebook_when_dcc_resumes"]
    assert run.doc["wan"] is not None and run.doc["wan"]["polls"] >= 1  # evidence kept
    assert run.doc["dcc_notice"] is not None


async def test_wan_fault_recovered_by_reconnect(site: Site) -> None:
    run = await probe(site, "wan_fault_recovers", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert run.doc["wan"]["reconnects"] >= 1
    assert "replace_hub" not in actions(run)


async def test_wan_fault_that_persists(site: Site) -> None:
    run = await probe(site, "wan_fault_persists", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "installed_no_wan"
    assert run.doc["wan"]["stuck_in_fault"] is True
    assert run.doc["wan"]["reconnects"] == 2  # the kit's max_reconnects
    assert actions(run) == ["replace_hub"]


async def test_wan_fault_that_persists_abort_on_no_wan(site: Site) -> None:
    job = dual_fuel(site, policy='"abort_on_no_wan"')
    run = await probe(site, "wan_fault_persists", job)
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_WAN"
    assert set(actions(run)) == {"monitor_wan_and_reinstruct", "replace_hub"}


async def test_gsme_joins_on_the_second_window(site: Site) -> None:
    run = await probe(site, "gsme_second_window", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert device(run, "GSME")["attempts"] == 2
    assert device(run, "ESME")["attempts"] == 1


async def test_gsme_never_joins_single_band_hub(site: Site) -> None:
    run = await probe(site, "gsme_never_single_band", dual_fuel(site))
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
    assert run.doc["abort"]["title"] == "Unable to Establish HAN - Meter Not Installed"
    assert set(actions(run)) == {"monitor_and_reinstruct", "fit_dual_band_hub"}
    gsme = device(run, "GSME")
    assert gsme["joined"] is False and gsme["attempts"] == 3
    assert gsme["last_failure"] == "window_expired"


async def test_gsme_never_joins_dual_band_hub(site: Site) -> None:
    run = await probe(site, "gsme_never_dual_band", dual_fuel(site))
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
    assert actions(run) == ["monitor_and_reinstruct"]
    assert run.doc["hub"]["hw_variant"] == "dual_band"


async def test_gsme_key_establishment_failure(site: Site) -> None:
    run = await probe(site, "gsme_key_failure", dual_fuel(site))
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
    assert actions(run) == ["monitor_and_reinstruct"]  # a dual band hub would not help
    assert device(run, "GSME")["last_failure"] == "key_establishment_failed"


async def test_optional_ihd_that_fails_is_not_an_abort(site: Site) -> None:
    run = await probe(site, "ihd_fails", dual_fuel(site))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    ihd = device(run, "IHD")
    assert ihd["required"] is False and ihd["joined"] is False


async def test_ct_site_gets_amr_only(site: Site) -> None:
    run = await probe(site, None, write_job(site.tmp, "ct-site"))
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "SMETS_METER_TYPE_NOT_AVAILABLE"
    assert run.doc["abort"]["title"] == "SMETS Meter Type Not Available"
    assert actions(run) == ["install_amr"]
    assert run.doc["wan"] is None  # the hub was never needed


async def test_polyphase_site_with_no_polyphase_meter_in_the_van(site: Site) -> None:
    run = await probe(
        site, None, write_job(site.tmp, "polyphase"), variants='["single_phase", "twin_element"]'
    )
    assert run.code == 3, run.stderr
    assert run.doc["abort"]["code"] == "SMETS_METER_TYPE_NOT_AVAILABLE"
    assert actions(run) == ["wait_for_variant", "install_amr"]


async def test_gas_only_job(site: Site) -> None:
    run = await probe(site, "quick", write_job(site.tmp, "gas-only"))
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert run.doc["meter_type"]["applicable"] is False
    assert [d["type"] for d in run.doc["han"]["devices"]] == ["GSME", "IHD"]
    assert device(run, "GSME")["joined"] is True


async def test_cable_pulled_during_the_han_probe_comes_back(site: Site) -> None:
    # The scenario pulls the cable at a site time; here it is pulled, for as long, once the
    # hub has the devices, so that the pull lands in the HAN probe however slow the CLI is.
    scenario = without_timed_faults("cable_pull_han")
    (pull,) = load_scenario(shipped_scenario("cable_pull_han")).faults.cable_pull

    async def pull_cable(sim: HubSimulator) -> None:
        await devices_added(sim, len(scenario.han.devices))
        sim.pull_cable(pull.for_s / SPEED)

    run = await probe(site, scenario, dual_fuel(site), fault=pull_cable)
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert "Lost the hub's serial link" in run.stderr
    assert "cable back" in run.stderr
    assert site.sim is not None and site.sim.cable_pulls


async def test_hub_silent_during_the_han_probe_fails_never_aborts(site: Site) -> None:
    # Domain rule "a silent hub": no HAN abort (nor fit_dual_band_hub) on the kit's own timer.
    started = asyncio.get_running_loop().time()
    run = await probe(site, "silent_han", dual_fuel(site))
    took = asyncio.get_running_loop().time() - started
    assert run.code == 1, run.stderr
    assert run.doc["outcome"] == "failed"
    assert run.doc.get("abort") is None and actions(run) == []
    assert run.doc["failure"]["stage"] == "han"
    assert "stopped answering" in run.doc["failure"]["reason"]
    assert run.doc["wan"]["established"] is True  # the evidence up to the silence stays
    assert site.sim is not None and site.sim.silences
    # The HAN deadline is 400 site s (8 real s): at most the rule's 10 s after it, never later.
    assert took < 8 + 10 + 5


async def test_hub_silent_during_the_wan_probe_fails_not_installed_without_wan(
    site: Site,
) -> None:
    run = await probe(site, "silent_wan", dual_fuel(site))
    assert run.code == 1, run.stderr
    assert run.doc["outcome"] == "failed"
    assert run.doc.get("abort") is None
    assert run.doc["failure"]["stage"] == "wan"
    assert "stopped answering" in run.doc["failure"]["reason"]
    assert run.doc["wan"]["established"] is False


async def test_hub_restart_during_the_han_probe(site: Site) -> None:
    # As for the cable pull: the restart strikes once the hub has the devices, before they join.
    scenario = without_timed_faults("restart_han")
    (restart,) = load_scenario(shipped_scenario("restart_han")).faults.restart

    async def restart_hub(sim: HubSimulator) -> None:
        await devices_added(sim, len(scenario.han.devices))
        sim.restart(restart.start_reason)

    run = await probe(site, scenario, dual_fuel(site), fault=restart_hub)
    assert run.code == 0, run.stderr
    assert run.doc["outcome"] == "commissioned"
    assert "hub restarted" in run.stderr.lower()
    assert site.sim is not None and site.sim.restarts


async def test_no_hub_on_the_port_fails_with_exit_1(site: Site) -> None:
    run = await probe(site, None, dual_fuel(site))
    assert run.code == 1, run.stderr
    assert run.doc["outcome"] == "failed"
    assert run.doc["failure"]["stage"] == "hub"
    assert str(site.link) in run.doc["failure"]["reason"]


async def test_ctrl_c_cancels_the_job_with_a_result(site: Site) -> None:
    site.sim = HubSimulator(load_scenario(shipped_scenario("wan_never")), site.link, speed=SPEED)
    await site.sim.start()
    kit = site.tmp / "kit.toml"
    kit.write_text(
        KIT.format(speed=SPEED, port=site.link, variants='["single_phase"]', wan_deadline=300)
    )
    proc = await spawn_probe(kit, dual_fuel(site))
    assert proc.stderr is not None
    while b"WAN searching" not in await asyncio.wait_for(proc.stderr.readline(), 20):
        pass
    proc.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 4
    doc = json.loads(out)
    assert doc["outcome"] == "cancelled" and doc["cancellation"]["by"] == "installer"
    assert doc["wan"]["polls"] >= 1


async def test_invalid_job_exits_2_with_the_key_path(site: Site) -> None:
    job = dual_fuel(site, mpan='"1600123456780"')  # wrong check digit
    kit = site.tmp / "kit.toml"
    kit.write_text(f'[hub]\nport = "{site.link}"\n')
    proc = await spawn_probe(kit, job)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert out == b""
    assert "mpan" in err.decode() and "check digit" in err.decode()
    assert "Traceback" not in err.decode()
