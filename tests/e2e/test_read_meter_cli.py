"""End to end: `gatewayd read-meter` and `gatewayd probe` with an optical probe, as processes.

The meter (and hub) simulators run in the test's event loop; the CLI runs as its own
process and reaches them through the ptys' stable links.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from gatewayd_sim.optical.meter import OpticalMeterSim
from gatewayd_sim.optical.profile import load_meter, shipped_meter

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sims() -> AsyncIterator[list[Any]]:
    running: list[Any] = []
    try:
        yield running
    finally:
        for sim in running:
            await sim.stop()


async def start_meter(sims: list[Any], tmp: Path, name: str) -> OpticalMeterSim:
    sim = OpticalMeterSim(load_meter(shipped_meter(name)), tmp / "probe")
    await sim.start()
    sims.append(sim)
    return sim


async def gatewayd(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    assert "Traceback" not in err.decode()
    return proc.returncode, out.decode(), err.decode()


def one_json(stdout: str) -> dict[str, Any]:
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document:\n{stdout}")
    assert isinstance(doc, dict)
    return doc


async def test_read_meter_json_polyphase(sims: list[Any], tmp_path: Path) -> None:
    sim = await start_meter(sims, tmp_path, "polyphase")
    code, out, err = await gatewayd("read-meter", "--probe", str(sim.link), "--json")
    assert code == 0, err
    doc = one_json(out)
    assert doc["identification"]["manufacturer"] == "LGZ"
    assert doc["identification"]["identification"] == "ZMD3104"
    assert doc["baudrate"] == 19200
    assert doc["arrangement"]["supply"] == "polyphase"
    regs = {d["address"]: d for d in doc["data_sets"]}
    assert regs["1-0:32.7.0*255"]["obis"] == "1-0:32.7.0*255"
    assert regs["1-0:32.7.0*255"]["values"] == [{"value": "239.8", "unit": "V"}]
    assert sim.events[-1].kind == "readout" and sim.events[-1].client_baud == 19200


async def test_read_meter_for_the_terminal(sims: list[Any], tmp_path: Path) -> None:
    sim = await start_meter(sims, tmp_path, "ct_operated")
    code, out, err = await gatewayd("read-meter", "--probe", str(sim.link))
    assert code == 0, err
    assert "Meter    LGZ ZMD4104CT" in out
    assert "Supply   ct  (rule: current transformer ratio above 1)" in out
    assert "CT ratio 200/5 = 40" in out
    assert "1-0:1.8.0*255" in out and "001234.56 kWh" in out


async def test_read_meter_at_300_without_baud_switch(sims: list[Any], tmp_path: Path) -> None:
    sim = await start_meter(sims, tmp_path, "single_phase_credit")
    code, out, _ = await gatewayd(
        "read-meter", "--probe", str(sim.link), "--no-baud-switch", "--json"
    )
    assert code == 0
    assert one_json(out)["baudrate"] == 300
    assert all(e.client_baud == 300 for e in sim.events)


async def test_read_meter_takes_the_probe_from_the_kit_config(
    sims: list[Any], tmp_path: Path
) -> None:
    sim = await start_meter(sims, tmp_path, "battery")
    kit = tmp_path / "kit.toml"
    kit.write_text(f'[hub]\nport = "/dev/null"\n[optical]\nport = "{sim.link}"\nwake_up = true\n')
    code, out, err = await gatewayd("read-meter", "--config", str(kit), "--json")
    assert code == 0, err
    assert one_json(out)["arrangement"]["supply"] == "single_phase"


async def test_missing_port_is_a_clear_error_and_one_json_document(tmp_path: Path) -> None:
    code, out, err = await gatewayd("read-meter", "--probe", str(tmp_path / "none"), "--json")
    assert code == 1
    doc = one_json(out)
    assert doc["error"]["step"] == "open"
    assert "no serial port at" in err and str(tmp_path / "none") in err


async def test_failed_read_exits_1(sims: list[Any], tmp_path: Path) -> None:
    sim = await start_meter(sims, tmp_path, "fault_wrong_bcc")
    code, out, err = await gatewayd("read-meter", "--probe", str(sim.link))
    assert code == 1
    assert out == ""
    assert "block check character" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no probe port"),
        (("--probe", "x", "--max-baud", "1000"), "not a mode C rate"),
        (("--probe", "x", "--address", "a/b"), "device address"),
        (("--probe", "x", "--rules", "/nonexistent/rules.toml"), "rules.toml"),
    ],
)
async def test_invalid_arguments_exit_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = await gatewayd("read-meter", *args)
    assert code == 2
    assert out == ""
    assert message in err


async def test_probe_job_reads_the_meter_and_records_the_mismatch(
    sims: list[Any], tmp_path: Path
) -> None:
    meter = await start_meter(sims, tmp_path, "polyphase")
    hub = HubSimulator(load_scenario(shipped_scenario("quick")), tmp_path / "hub", speed=50)
    await hub.start()
    sims.append(hub)
    kit = tmp_path / "kit.toml"
    kit.write_text(
        f'time_scale = 50\n[hub]\nport = "{tmp_path / "hub"}"\n'
        f'[poll]\nattempt_timeout_s = 200\n[optical]\nport = "{meter.link}"\n'
    )
    job = ROOT / "examples" / "jobs" / "dual-fuel.toml"  # says single_phase
    code, out, err = await gatewayd("probe", "--config", str(kit), "--job", str(job), "--json")
    assert code == 0, err
    mt = one_json(out)["meter_type"]
    assert (mt["supply"], mt["source"], mt["job_supply"], mt["mismatch"]) == (
        "polyphase",
        "meter",
        "single_phase",
        True,
    )
    assert mt["meter"]["identification"] == "ZMD3104"
    assert "the meter on the wall shows a polyphase supply" in err
