"""The ZNP client frame by frame against a radio the test scripts, on a real pty.

The scenario simulator models a site; here each test decides exactly what the stick answers
(at once, never, with the wrong command, malformed, with callbacks before and after), to pin
SREQ/SRSP matching, timeouts, callback delivery and the loss of the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.znp import commands as c
from gatewayd_drivers.znp.client import ZnpClient, ZnpTimers
from gatewayd_drivers.znp.errors import ZnpDisconnected, ZnpError, ZnpStatusError, ZnpTimeout
from gatewayd_drivers.znp.frames import FrameDecoder, MtFrame, encode_frame
from gatewayd_sim.pty import PtyPort
from tests.waiting import wait_until

Script = Callable[[MtFrame], list[bytes]]


class ScriptedRadio:
    """Calls ``script`` for every frame the client sends and writes back what it returns."""

    def __init__(self, link: Path) -> None:
        self.script: Script = lambda frame: []
        self.received: list[MtFrame] = []
        self._decoder = FrameDecoder(self._on_frame)
        self.port = PtyPort(link, self._decoder.feed)

    def _on_frame(self, frame: MtFrame) -> None:
        self.received.append(frame)
        for chunk in self.script(frame):
            self.port.write(chunk)

    def send(self, frame: MtFrame) -> None:
        self.port.write(encode_frame(frame))


FAST = ZnpTimers(sreq_timeout_s=0.5, first_ping_s=0.3, reset_timeout_s=0.5, confirm_margin_s=0.5)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[ScriptedRadio, ZnpClient]]:
    radio = ScriptedRadio(tmp_path / "radio")
    radio.port.open()
    client = ZnpClient(
        str(tmp_path / "radio"), timers=FAST, backoff=BackoffSettings(first_s=0.02, max_s=0.1)
    )
    await client.start()
    assert await client.wait_connected(5)
    try:
        yield radio, client
    finally:
        await client.stop()
        radio.port.close()


def answer(cmd: c.Cmd, data: bytes) -> bytes:
    return encode_frame(cmd.response(data))


async def test_an_instant_answer_in_the_same_write_is_not_missed(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    # The SRSP and a callback arrive in one chunk, before the client could look up.
    radio.script = lambda f: [
        answer(c.Cmd.SYS_PING, b"\x59\x06") + encode_frame(c.Cmd.SYS_RESET_IND.frame(bytes(6)))
    ]
    assert await client.ping() == 0x0659


async def test_an_answer_to_another_command_does_not_end_a_request(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    radio.script = lambda f: [answer(c.Cmd.SYS_VERSION, bytes(5))]
    with pytest.raises(ZnpTimeout, match=r"SYS_PING within 0\.5 s"):
        await client.ping()
    assert client.stats.timeouts == 1


async def test_a_malformed_answer_is_an_error_not_a_crash(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    radio.script = lambda f: [answer(c.Cmd.SYS_PING, b"\x01")]
    with pytest.raises(ZnpError, match=r"malformed answer from the radio: SYS\.Ping response"):
        await client.ping()
    radio.script = lambda f: [answer(c.Cmd.SYS_PING, b"\x01\x00")]
    assert await client.ping() == 1


async def test_a_refused_nv_write_names_the_item_and_status(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    radio.script = lambda f: [answer(c.Cmd.SYS_OSAL_NV_WRITE, b"\x0a")]
    with pytest.raises(ZnpStatusError, match=r"NV write of 0x0084: status 0x0a"):
        await client.nv_write(c.NV_CHANLIST, bytes(4))


async def test_beacons_are_collected_until_the_confirm_and_malformed_ones_dropped(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    hub = c.Beacon(0, 0x1A2B, 15, False, 1, 1, 2, 2, 200, 0, 0, c.ext_pan_from_wire(bytes(8)))

    def script(f: MtFrame) -> list[bytes]:
        if c.Cmd.SYS_OSAL_NV_WRITE.matches(f):
            return [answer(c.Cmd.SYS_OSAL_NV_WRITE, b"\x00")]
        if c.Cmd.SYS_RESET_REQ.matches(f):
            return [encode_frame(c.Cmd.SYS_RESET_IND.frame(bytes((1, 2, 1, 2, 7, 1))))]
        if c.Cmd.ZDO_NETWORK_DISCOVERY_REQ.matches(f):
            return [
                # A beacon notification can come before the SRSP: the listener is ready.
                encode_frame(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons([hub]))),
                answer(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, b"\x00"),
                encode_frame(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(b"\x02" + bytes(21))),  # short
                encode_frame(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons([hub, hub]))),
                encode_frame(c.Cmd.ZDO_NWK_DISCOVERY_CNF.frame(b"\x00")),
                encode_frame(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons([hub]))),  # late
            ]
        return []

    radio.script = script
    beacons = await client.network_discovery([15], 0)
    assert beacons == [hub, hub, hub]
    assert client.stats.malformed == 1
    kinds = [next(cmd for cmd in c.Cmd if cmd.matches(f)) for f in radio.received]
    assert kinds == [
        c.Cmd.SYS_OSAL_NV_WRITE,
        c.Cmd.SYS_RESET_REQ,
        c.Cmd.ZDO_NETWORK_DISCOVERY_REQ,
    ]
    assert radio.received[0].data == bytes.fromhex("8400000400800000")  # channel 15 only


def discovery_confirmed_with(status: int) -> Script:
    """A stick that hears nothing and ends the discovery with ``status``."""

    def script(f: MtFrame) -> list[bytes]:
        if c.Cmd.SYS_OSAL_NV_WRITE.matches(f):
            return [answer(c.Cmd.SYS_OSAL_NV_WRITE, b"\x00")]
        if c.Cmd.SYS_RESET_REQ.matches(f):
            return [encode_frame(c.Cmd.SYS_RESET_IND.frame(bytes((1, 2, 1, 2, 7, 1))))]
        if c.Cmd.ZDO_NETWORK_DISCOVERY_REQ.matches(f):
            return [
                answer(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, b"\x00"),
                encode_frame(c.Cmd.ZDO_NWK_DISCOVERY_CNF.frame(bytes((status,)))),
            ]
        return []

    return script


async def test_a_discovery_that_heard_no_beacon_is_an_empty_answer(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    radio.script = discovery_confirmed_with(c.MtStatus.MAC_NO_BEACON)
    assert await client.network_discovery([15], 0) == []
    radio.script = discovery_confirmed_with(c.MtStatus.FAILURE)
    with pytest.raises(ZnpStatusError, match=r"network discovery: status 0x01"):
        await client.network_discovery([15], 0)


def startup_answering(state: int) -> Script:
    """A stick that answers StartupFromApp with ``state`` and then reports itself coordinator."""

    def script(f: MtFrame) -> list[bytes]:
        if c.Cmd.ZDO_STARTUP_FROM_APP.matches(f):
            return [
                answer(c.Cmd.ZDO_STARTUP_FROM_APP, bytes((state,))),
                encode_frame(
                    c.Cmd.ZDO_STATE_CHANGE_IND.frame(bytes((c.DeviceState.STARTED_AS_COORDINATOR,)))
                ),
            ]
        return []

    return script


@pytest.mark.parametrize("state", [c.StartupState.RESTORED_NETWORK, c.StartupState.NEW_NETWORK])
async def test_a_started_network_is_waited_for(
    pair: tuple[ScriptedRadio, ZnpClient], state: c.StartupState
) -> None:
    radio, client = pair
    radio.script = startup_answering(state)
    await client.start_network()
    await client.start_network()  # already up: not asked again
    assert len(radio.received) == 1


@pytest.mark.parametrize("state", [c.StartupState.NOT_STARTED, 0x07])
async def test_a_network_not_started_is_a_status_error(
    pair: tuple[ScriptedRadio, ZnpClient], state: int
) -> None:
    radio, client = pair
    radio.script = startup_answering(state)
    with pytest.raises(ZnpStatusError, match=rf"network start: status {state:#04x}"):
        await client.start_network()


async def test_a_lost_port_fails_the_waiting_request_at_once(
    pair: tuple[ScriptedRadio, ZnpClient],
) -> None:
    radio, client = pair
    radio.script = lambda f: []
    task = asyncio.create_task(client.request(c.version_req(), timeout_s=30))
    # Unplug only once the stick has the request: it is then really waiting for an answer.
    await wait_until(lambda: any(c.Cmd.SYS_VERSION.matches(f) for f in radio.received))
    radio.port.unplug()
    with pytest.raises(ZnpDisconnected):
        async with asyncio.timeout(5):
            await task
    with pytest.raises(ZnpDisconnected, match="not connected"):
        await client.ping()


async def test_a_silent_stick_is_reset_once(pair: tuple[ScriptedRadio, ZnpClient]) -> None:
    radio, client = pair
    awake = False

    def script(f: MtFrame) -> list[bytes]:
        nonlocal awake
        if c.Cmd.SYS_RESET_REQ.matches(f):
            awake = True
            return [encode_frame(c.Cmd.SYS_RESET_IND.frame(bytes((0, 2, 1, 2, 7, 1))))]
        if not awake:
            return []
        if c.Cmd.SYS_PING.matches(f):
            return [answer(c.Cmd.SYS_PING, b"\x59\x06")]
        if c.Cmd.SYS_VERSION.matches(f):
            return [answer(c.Cmd.SYS_VERSION, bytes((2, 1, 2, 7, 1)))]
        return []

    radio.script = script
    info = await client.identify()
    assert info.needed_reset and info.version.code_revision is None
    assert radio.received[1].data == bytes((c.ResetType.SOFT,))
