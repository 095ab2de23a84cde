"""End to end: `gatewayd survey` and the dual-band advice it backs, through the real CLI.

The hub and radio simulators run in the test's event loop; each CLI call is its own process,
as an installer starts it. The survey is taken at the gas meter with ``--at``, kept in the
kit's survey store, and quoted by a later `gatewayd probe` whose GSME never joins. One test
runs the probe on a pseudo-terminal, where the installer is asked to carry the kit to the
meter and the survey is taken then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from gatewayd_sim.znp.radio import ZnpSimulator
from gatewayd_sim.znp.scenario import load_radio_scenario, shipped_radio_scenario
from tests.waiting import wait_until

SPEED = 50
ROOT = Path(__file__).resolve().parents[2]
GAS_JOB = ROOT / "examples" / "jobs" / "gas-only.toml"
HUB_EUI = "00-DB-12-34-56-78-90-A0"
GSME = "00-DB-12-34-56-78-90-A2"

KIT = """
time_scale = {speed}
[hub]
port = "{hub}"
[radio]
port = "{radio}"
[survey]
scan_duration = 0
beacon_scans = 2
store_dir = "{store}"
[han]
deadline_s = 300
join_window_s = 40
join_attempts = 2
[poll]
first_interval_s = 5
max_interval_s = 20
attempt_timeout_s = 200
"""


@dataclass
class Kit:
    tmp: Path
    sims: list[HubSimulator | ZnpSimulator] = field(default_factory=list)
    radio: ZnpSimulator | None = None

    @property
    def config(self) -> Path:
        return self.tmp / "kit.toml"

    async def start(self, hub_scenario: str, radio_scenario: str) -> None:
        hub = HubSimulator(
            load_scenario(shipped_scenario(hub_scenario)), self.tmp / "hub", speed=SPEED
        )
        self.radio = ZnpSimulator(
            load_radio_scenario(shipped_radio_scenario(radio_scenario)), self.tmp / "radio"
        )
        for sim in (hub, self.radio):
            await sim.start()
            self.sims.append(sim)
        self.config.write_text(
            KIT.format(
                speed=SPEED,
                hub=self.tmp / "hub",
                radio=self.tmp / "radio",
                store=self.tmp / "surveys",
            )
        )


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    k = Kit(tmp_path)
    try:
        yield k
    finally:
        for sim in k.sims:
            await sim.stop()


async def gatewayd(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def result_of(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)  # exactly one JSON document, nothing else on stdout
    assert isinstance(doc, dict)
    return doc


async def test_survey_json_is_one_document(kit: Kit) -> None:
    await kit.start("quick", "gas_meter_marginal")
    code, out, err = await gatewayd(
        "survey", "--radio", str(kit.tmp / "radio"), "--hub-eui", HUB_EUI.lower(), "--json",
        "--config", str(kit.config),
    )  # fmt: skip
    assert code == 0, err
    doc = result_of(out)
    assert doc["judgement"] == "marginal"
    assert doc["hub"]["channel"] == 15 and doc["hub"]["lqi"] == 48
    assert [c["channel"] for c in doc["channels"]] == list(range(11, 27))
    assert "Traceback" not in err


async def test_survey_table_marks_the_hub_channel(kit: Kit) -> None:
    await kit.start("quick", "site_good")
    code, out, err = await gatewayd(
        "survey", "--config", str(kit.config), "--hub-eui", HUB_EUI
    )  # fmt: skip
    assert code == 0, err
    assert "15 <" in out and f"HUB {HUB_EUI} 0x1a2b LQI 230" in out
    assert "00-DB-12-34-56-00-11-22" in out  # a neighbour's network
    assert "GOOD" in out


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--radio", "{tmp}/radio", "--hub-eui", "00-DB-12"], 2, "--hub-eui: '00-DB-12'"),
        (["--radio", "{tmp}/radio", "--at", "the cellar"], 2, "--at: 'the cellar'"),
        (["--radio", "{tmp}/no-such-port"], 1, "no serial port at"),
        ([], 2, "no radio port"),
    ],
)
async def test_bad_arguments_get_a_clear_error(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    got, out, err = await gatewayd("survey", *[a.format(tmp=tmp_path) for a in args])
    assert got == code
    assert words in err and "Traceback" not in err
    assert out == ""


async def test_a_port_that_answers_nothing_fails_cleanly(tmp_path: Path) -> None:
    # A pty with nobody behind it: the port opens, the radio never answers.
    master, slave = os.openpty()
    try:
        code, out, err = await gatewayd(
            "survey", "--radio", os.ttyname(slave), "--json", timeout=60
        )  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    assert code == 1 and out == ""
    assert "could not survey" in err and "Traceback" not in err


async def probe_gas_job(kit: Kit) -> dict[str, Any]:
    code, out, err = await gatewayd(
        "probe", "--config", str(kit.config), "--job", str(GAS_JOB), "--json", timeout=90
    )  # fmt: skip
    assert code == 3, err
    return result_of(out)


async def test_not_heard_at_the_gas_meter_backs_the_dual_band_advice(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "gas_meter_not_heard")
    code, out, err = await gatewayd(
        "survey", "--config", str(kit.config), "--hub-eui", HUB_EUI, "--at", GSME, "--json"
    )  # fmt: skip
    assert code == 0, err
    assert result_of(out)["judgement"] == "not_heard"
    doc = await probe_gas_job(kit)
    assert doc["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
    actions = [a["action"] for a in doc["next_actions"]]
    assert actions == ["monitor_and_reinstruct", "fit_dual_band_hub"]
    evidence = doc["abort"]["evidence"]
    (advice,) = evidence["dual_band_advice"]
    assert advice["basis"] == "survey_not_heard" and advice["eui64"] == GSME
    assert "did not hear the hub's network" in advice["text"]
    (failing,) = evidence["failing_devices"]
    assert failing["survey"] == "not_heard"
    assert failing["survey_evidence"]["source"] == "stored"
    gsme = next(d for d in doc["han"]["devices"] if d["eui64"] == GSME)
    assert gsme["survey"] == "not_heard"
    assert gsme["survey_evidence"]["position"] == GSME


async def test_marginal_at_the_gas_meter_says_why(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "gas_meter_marginal")
    code, _, err = await gatewayd(
        "survey", "--config", str(kit.config), "--hub-eui", HUB_EUI, "--at", GSME, "--json"
    )  # fmt: skip
    assert code == 0, err
    doc = await probe_gas_job(kit)
    (advice,) = doc["abort"]["evidence"]["dual_band_advice"]
    assert advice["basis"] == "survey_marginal"
    assert "LQI 48" in advice["text"]


async def test_good_at_the_gas_meter_withholds_the_dual_band_advice(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "site_good")
    assert kit.radio is not None
    kit.radio.move_to("at_gas_meter")
    code, _, err = await gatewayd(
        "survey", "--config", str(kit.config), "--hub-eui", HUB_EUI, "--at", GSME, "--json"
    )  # fmt: skip
    assert code == 0, err
    doc = await probe_gas_job(kit)
    assert [a["action"] for a in doc["next_actions"]] == ["monitor_and_reinstruct"]
    (failing,) = doc["abort"]["evidence"]["failing_devices"]
    assert failing["survey_evidence"]["judgement"] == "good"
    assert "dual_band_advice" not in doc["abort"]["evidence"]


async def test_a_survey_of_another_position_is_not_used(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "gas_meter_not_heard")
    code, _, err = await gatewayd(
        "survey", "--config", str(kit.config), "--hub-eui", HUB_EUI, "--at", "at_hub"
    )  # fmt: skip
    assert code == 0, err
    doc = await probe_gas_job(kit)
    (advice,) = doc["abort"]["evidence"]["dual_band_advice"]
    assert advice["basis"] == "no_survey"


async def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    loop = asyncio.get_running_loop()
    while needle not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} never came; got {seen[-2000:]!r}")
        ready = asyncio.Event()
        loop.add_reader(fd, ready.set)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 1.0)):
                    await ready.wait()
        finally:
            loop.remove_reader(fd)
        with contextlib.suppress(BlockingIOError, OSError):
            seen += os.read(fd, 65536)
    return seen


async def test_on_a_terminal_the_installer_is_asked_and_the_survey_taken(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "gas_meter_not_heard")
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "probe", "--config", str(kit.config),
        "--job", str(GAS_JOB),
        stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(slave)
    try:
        await read_until(master, b"press Enter to take an RF survey", 60)
        assert kit.radio is not None and not kit.radio.received  # nothing asked before
        os.write(master, b"\r")
        seen = await read_until(master, b"[fit_dual_band_hub]", 60)
        assert b"the hub is not_heard" in seen or b"the hub is not heard" in seen
        assert await asyncio.wait_for(proc.wait(), 30) == 3
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)


async def test_with_json_on_a_terminal_nobody_is_asked(kit: Kit) -> None:
    await kit.start("gsme_never_single_band", "gas_meter_not_heard")
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "probe", "--config", str(kit.config),
        "--job", str(GAS_JOB), "--json",
        stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    os.close(slave)
    try:
        seen = await read_until(master, b'"fit_dual_band_hub"', 60)
        assert await asyncio.wait_for(proc.wait(), 30) == 3
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    assert b"press Enter" not in seen
    assert kit.radio is not None and not kit.radio.received  # the radio was never used
    assert b'"basis": "no_survey"' in seen


async def test_the_standalone_radio_simulator_serves_a_survey(tmp_path: Path) -> None:
    import signal

    link = tmp_path / "radio"
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "sim", "radio", "--scenario", "gas_meter_not_heard",
        "--link", str(link), "--position", "at_hub",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await wait_until(link.exists, timeout=10)
        kit = tmp_path / "kit.toml"
        kit.write_text('[hub]\nport = "/dev/null"\n[survey]\nscan_duration = 0\n')
        code, out, err = await gatewayd(
            "survey", "--config", str(kit), "--radio", str(link), "--hub-eui", HUB_EUI, "--json"
        )  # fmt: skip
        assert code == 0, err
        assert result_of(out)["judgement"] == "good"  # at the hub, the hub is heard well
    finally:
        sim.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(sim.wait(), 10) == 0


async def test_the_radio_simulator_refuses_a_bad_position(tmp_path: Path) -> None:
    code, _, err = await gatewayd(
        "sim", "radio", "--scenario", "site_good", "--link", str(tmp_path / "r"),
        "--position", "in_the_loft",
    )  # fmt: skip
    assert code == 2 and "no position 'in_the_loft'" in err and "Traceback" not in err
