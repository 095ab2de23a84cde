"""The serial path's reading and writing, over real ptys: any descriptor number, any read error.

A daemon with hundreds of hub ports holds descriptors past 1023, where select() gives up;
and a read can fail in ways no one listed. Both must leave the link working: the first
by never calling select() (nor poll()) anywhere on the serial path, the hub link's or the
optical line's, the second by treating the port as lost and reopening it. A port costs one
descriptor, the figure the daemon's descriptor budget counts on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import select
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatewayd.daemon.fd_limit import PER_HUB
from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_drivers.commshub.messages import Cmd
from gatewayd_drivers.iec62056.reader import ReadOptions, read_meter
from gatewayd_drivers.serial_link import LinkState, SerialLink
from gatewayd_sim.optical.meter import OpticalMeterSim
from gatewayd_sim.optical.profile import load_meter, shipped_meter
from gatewayd_sim.pty import PtyPort
from tests.integration.scripted_hub import ScriptedHub
from tests.integration.test_optical_reader import FAST as FAST_READ
from tests.waiting import wait_until

FAST_BACKOFF = BackoffSettings(first_s=0.02, max_s=0.1)
# select() handles descriptors below FD_SETSIZE (1024) only.
FD_SETSIZE = 1024
FILLER_FDS = 1100


@pytest.fixture
def descriptors_past_fd_setsize() -> Iterator[None]:
    """Holds the low descriptors, so whatever opens next gets one above 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILLER_FDS + 200
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard descriptor limit ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    null = os.open(os.devnull, os.O_RDONLY)
    fillers = [null]
    try:
        fillers += [os.dup(null) for _ in range(FILLER_FDS)]
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def select_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``select.select`` and ``select.poll`` note each call and raise; the list of calls.

    The event loop already holds its epoll, which stays untouched. A call is noted as well
    as refused because the serial path turns any error into a lost port, which could hide
    the refusal itself.
    """
    calls: list[str] = []

    def refusing(name: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            calls.append(name)
            raise AssertionError(f"select.{name}() called on the serial path")

        return call

    for name in ("select", "poll"):
        monkeypatch.setattr(select, name, refusing(name))
    return calls


def _port_fd(client: HubClient) -> int:
    port = client._link._port
    assert port is not None
    return port._fd


async def _ping(hub: ScriptedHub, client: HubClient) -> None:
    task = asyncio.create_task(client.ping())
    seen = await hub.next_request()
    assert seen.frame.cmd == Cmd.PING
    hub.respond(seen.frame)
    await task


@pytest.mark.usefixtures("descriptors_past_fd_setsize")
async def test_a_hub_port_above_descriptor_1023_works(tmp_path: Path) -> None:
    hub = ScriptedHub(tmp_path / "hub")
    hub.open()
    client = HubClient(str(hub.link), name="high", backoff=FAST_BACKOFF)
    try:
        await client.start()
        assert await client.wait_connected(5)
        assert _port_fd(client) >= FD_SETSIZE
        await _ping(hub, client)
        assert client._link.counters.errors == 0
    finally:
        await client.stop()
        hub.close()


def _read_failing_once(monkeypatch: pytest.MonkeyPatch, fd: int, exc: Exception) -> None:
    """``os.read`` on ``fd`` raises ``exc`` once; every other read is untouched."""
    real_read: Callable[[int, int], bytes] = os.read
    raised = False

    def read(which: int, size: int) -> bytes:
        nonlocal raised
        if which == fd and not raised:
            raised = True
            raise exc
        return real_read(which, size)

    monkeypatch.setattr(os, "read", read)


@pytest.mark.parametrize(
    "failure",
    [
        ValueError("filedescriptor out of range in select()"),
        OSError(95, "Operation not supported"),
        RuntimeError("a read error nobody listed"),
    ],
    ids=["ValueError", "OSError-EOPNOTSUPP", "RuntimeError"],
)
async def test_an_unexpected_read_error_is_a_lost_port_then_a_reopen(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Exception,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub = ScriptedHub(tmp_path / "hub")
    hub.open()
    client = HubClient(str(hub.link), name="flaky", backoff=FAST_BACKOFF)
    counters = client._link.counters
    try:
        await client.start()
        assert await client.wait_connected(5)
        first = client._link._port
        _read_failing_once(monkeypatch, _port_fd(client), failure)
        # Any byte from the hub makes the port readable, and that read fails.
        hub.write(b"\x7e")
        await wait_until(lambda: counters.reconnects == 1)
        assert client.connected and client._link._port is not first
        assert counters.errors == 1
        await _ping(hub, client)
    finally:
        await client.stop()
        hub.close()
    lost = [r for r in caplog.records if str(failure) in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    assert lost[0].levelno == logging.WARNING and lost[0].exc_info is None
    # Nothing reached the loop's exception handler (the traceback loop of the issue).
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


async def test_no_select_on_the_link_moving_bytes_both_ways(
    tmp_path: Path, select_calls: list[str]
) -> None:
    at_device = bytearray()
    at_link = bytearray()
    states: list[LinkState] = []
    device = PtyPort(tmp_path / "dev", at_device.extend)
    device.open()
    link = SerialLink(
        str(device.link), on_data=at_link.extend, on_state=states.append, backoff=FAST_BACKOFF
    )
    try:
        await link.start()
        assert await link.wait_connected(5)
        # Far more than a pty holds at once: the link writes what it can and waits for
        # the rest to be taken, through the event loop.
        outgoing = bytes(range(256)) * 1024
        link.write(outgoing)
        await wait_until(lambda: len(at_device) >= len(outgoing), timeout=30)
        assert bytes(at_device) == outgoing
        incoming = b""
        for i in range(32):
            chunk = bytes([i]) * 1024
            assert device.write(chunk)
            incoming += chunk
            await wait_until(lambda: len(at_link) >= len(incoming))  # noqa: B023
        assert bytes(at_link) == incoming
        assert link.counters.errors == 0 and states == [LinkState.CONNECTED]
    finally:
        await link.stop()
        device.close()
    assert select_calls == []


async def _read_a_meter(tmp_path: Path) -> None:
    """A whole optical read: open at 300 7E1, identification, speed switch, readout, close."""
    sim = OpticalMeterSim(load_meter(shipped_meter("single_phase_credit")), tmp_path / "probe")
    sim.port.open()
    try:
        reading = await read_meter(str(sim.link), ReadOptions(timings=FAST_READ))
    finally:
        await sim.stop()
    assert reading.baudrate == 9600 and not reading.baud_switch_failed
    assert sim.kinds() == ["sign_on", "identification", "ack", "readout"]
    assert len(reading.data_sets) == 10


async def test_no_select_on_the_optical_line(tmp_path: Path, select_calls: list[str]) -> None:
    await _read_a_meter(tmp_path)
    assert select_calls == []


@pytest.mark.usefixtures("descriptors_past_fd_setsize")
async def test_an_optical_port_above_descriptor_1023_works(tmp_path: Path) -> None:
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    assert probe >= FD_SETSIZE  # so the probe's port, opened next, is above 1023 too
    await _read_a_meter(tmp_path)


def _descriptors() -> dict[int, str]:
    """This process's open descriptors and what each one is."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own, closed by now
            found[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return found


async def test_a_port_costs_the_descriptors_the_budget_counts(tmp_path: Path) -> None:
    device = PtyPort(tmp_path / "dev", lambda _data: None)
    device.open()
    link = SerialLink(str(device.link), on_data=lambda _data: None, backoff=FAST_BACKOFF)
    before = _descriptors()
    try:
        await link.start()
        assert await link.wait_connected(5)
        # Only what appeared: a descriptor closed meanwhile (a collected leftover of
        # another test) must not count against the port.
        opened = {fd: what for fd, what in _descriptors().items() if before.get(fd) != what}
        assert list(opened.values()) == [device.path] and len(opened) == PER_HUB == 1
    finally:
        await link.stop()
    # The link closes its port just after stopping (off the loop): then only the device's
    # own end of the pty is left.
    await wait_until(lambda: list(_descriptors().values()).count(str(device.path)) == 1)
    assert [what for what in _descriptors().values() if what == device.path] == [device.path]
    device.close()
