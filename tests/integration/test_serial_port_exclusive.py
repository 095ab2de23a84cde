"""One serial port, one user: a second opener gets a clear error, the first keeps the port.

Over real ptys. Every port the project opens (hub links, the radio, the optical line) is
locked while open; a second link or tool on the same device, under whatever name, is told
that another process has it open (with the holder's PID), instead of sharing the line and
both flapping. The daemon's link keeps retrying a held port; the CLI verbs give up at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gatewayd.cli.hub_status import run_hub_status
from gatewayd.cli.probe import probe
from gatewayd.clock import SystemClock
from gatewayd.config.job import parse_job
from gatewayd.config.kit import parse_kit_config
from gatewayd.config.survey import SurveyConfig
from gatewayd.engine.verdict import Outcome
from gatewayd.survey.scan import SurveyFailed, survey_on_port
from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.iec62056.errors import PortError
from gatewayd_drivers.iec62056.reader import read_meter
from gatewayd_drivers.serial_link import PortBusy, SerialLink, open_unconfigured
from gatewayd_sim.pty import PtyPort
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
FAST_BACKOFF = BackoffSettings(first_s=0.02, max_s=0.1)
# Longer than any test runs: a wait that does not fail fast on a held port hangs the test
# until its own guard (GUARD_S) fails it.
FOREVER_S = 3600.0
GUARD_S = 60.0
IN_USE = "is already open in another process"


class Device:
    """The device end of a pty, recording what the client wrote."""

    def __init__(self, link: Path) -> None:
        self.received = bytearray()
        self.port = PtyPort(link, self.received.extend)

    @property
    def path(self) -> str:
        path = self.port.path
        assert path is not None
        return path


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    dev = Device(tmp_path / "port")
    dev.port.open()
    try:
        yield dev
    finally:
        dev.port.close()


@contextmanager
def held(path: str) -> Iterator[None]:
    """``path`` open and locked by this process, as another tool would hold it."""
    port = open_unconfigured(path)
    try:
        yield
    finally:
        port.close()


def _link(path: str, got: bytearray, *, fail_fast: bool = False) -> SerialLink:
    return SerialLink(path, on_data=got.extend, backoff=FAST_BACKOFF, fail_fast_when_busy=fail_fast)


async def test_a_second_link_is_refused_and_the_first_keeps_working(device: Device) -> None:
    first_got, second_got = bytearray(), bytearray()
    first = _link(str(device.port.link), first_got)
    # The same device under another name: the symlink's target.
    second = _link(device.path, second_got, fail_fast=True)
    try:
        await first.start()
        assert await first.wait_connected(GUARD_S)
        await second.start()
        async with asyncio.timeout(GUARD_S):
            assert not await second.wait_connected(FOREVER_S)
        assert isinstance(second.busy, PortBusy)
        assert not second.connected and second.counters.errors >= 1
        why = second.last_error
        assert why is not None
        assert device.path in why and IN_USE in why and f"pid {os.getpid()}" in why

        # The first link never noticed: its bytes still flow both ways.
        assert device.port.write(b"to the first")
        await wait_until(lambda: first_got == b"to the first", GUARD_S)
        first.write(b"from the first")
        await wait_until(lambda: device.received == b"from the first", GUARD_S)
        assert first.connected
        assert first.counters.errors == 0 and first.counters.reconnects == 0
        assert second_got == b""

        # Once the first lets go, the second (still retrying) opens the port. (Its own
        # wait_connected would say at once that the last try found the port held.)
        await first.stop()
        await wait_until(lambda: second.connected, GUARD_S)
        assert second.busy is None
        assert device.port.write(b"to the second")
        await wait_until(lambda: second_got == b"to the second", GUARD_S)
    finally:
        await first.stop()
        await second.stop()


async def test_the_port_is_free_as_soon_as_stop_returns(device: Device) -> None:
    link = _link(str(device.port.link), bytearray())
    await link.start()
    try:
        assert await link.wait_connected(GUARD_S)
    finally:
        await link.stop()
    # No wait: the next opener (a tool run right after) must not find the lock still held.
    open_unconfigured(device.path).close()


async def test_a_held_port_is_retried_logged_once_and_counted(
    device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gatewayd_drivers.serial_link")
    link = _link(str(device.port.link), bytearray())
    try:
        with held(device.path):
            await link.start()
            # The daemon's link keeps trying (the holder may go away), counting each try.
            await wait_until(lambda: link.counters.errors >= 3, GUARD_S)
            assert not link.connected and link.busy is not None
        assert await link.wait_connected(GUARD_S)
        assert link.busy is None and link.last_error is None
    finally:
        await link.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "held by another process" in warnings[0]
    assert str(device.port.link) in warnings[0] and IN_USE in warnings[0]


def test_the_holder_in_another_process_is_named_by_its_pid() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from gatewayd_drivers.serial_link import open_unconfigured\n"
            f"port = open_unconfigured({path!r})\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == "ready\n"
        with pytest.raises(PortBusy) as refused:
            open_unconfigured(path)
        assert str(refused.value).startswith(f"{path} {IN_USE} (pid {holder.pid}")
        assert refused.value.path == path
        holder.stdin.close()
        assert holder.wait(GUARD_S) == 0
        # The holder's exit released the lock.
        open_unconfigured(path).close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        os.close(master)
        os.close(slave)


# --- the CLI verbs: at once, not after their connect timeout ------------------------------


async def test_hub_status_beside_a_holder_fails_at_once(
    device: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    link = str(device.port.link)
    with held(device.path):
        async with asyncio.timeout(GUARD_S):
            code = await run_hub_status(
                link, as_json=False, watch=False, connect_timeout_s=FOREVER_S
            )
    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot open hub port {link}" in err and IN_USE in err and f"pid {os.getpid()}" in err


async def test_probe_beside_a_holder_fails_the_job_at_once(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gatewayd.engine.commissioning.HUB_CONNECT_TIMEOUT_S", FOREVER_S)
    link = str(device.port.link)
    kit = parse_kit_config({"hub": {"port": link}})
    job = parse_job(tomllib.loads((ROOT / "examples/jobs/dual-fuel.toml").read_text()))
    with held(device.path):
        async with asyncio.timeout(GUARD_S):
            run = await probe(job, kit, link, clock=SystemClock(), sinks=[])
    assert run.verdict.outcome is Outcome.FAILED
    failure = run.result.failure
    assert failure is not None and failure.stage == "hub"
    assert link in failure.reason and IN_USE in failure.reason


async def test_a_survey_beside_a_holder_fails_at_once(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gatewayd.survey.scan.RADIO_CONNECT_TIMEOUT_S", FOREVER_S)
    link = str(device.port.link)
    with held(device.path), pytest.raises(SurveyFailed) as failed:
        async with asyncio.timeout(GUARD_S):
            await survey_on_port(link, SurveyConfig(), hub_eui=None, position=None)
    assert f"cannot open the radio's port {link}" in str(failed.value)
    assert IN_USE in str(failed.value)


async def test_a_meter_read_beside_a_holder_says_who_has_the_probe(device: Device) -> None:
    link = str(device.port.link)
    with held(device.path), pytest.raises(PortError) as failed:
        await read_meter(link)
    assert failed.value.step == "open"
    assert str(failed.value) == f"{link} {IN_USE} (pid {os.getpid()}, {_comm()})"


def _comm() -> str:
    return Path("/proc/self/comm").read_text().strip()
