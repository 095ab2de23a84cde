"""The Comms Hub simulator over its real pty, driven with raw reads/writes and the LSP codec.

No gateway client here on purpose: these tests pin the device side of the spec
byte for byte, so the client can be tested against a simulator known to be right.
Protocol timers are real time; the site's story runs fast (high speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import select
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from textwrap import dedent

import pytest
import serialx

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType, encode_frame
from gatewayd_drivers.commshub.messages import (
    Band,
    Cmd,
    CspRegion,
    DeviceJoinFailed,
    DeviceLog,
    DeviceLogAdd,
    DeviceLogChanged,
    DeviceLogRemove,
    DeviceType,
    EventCode,
    HanState,
    HanStatus,
    HubInfo,
    HwVariant,
    JoinFailReason,
    JoinState,
    RegState,
    StartReason,
    Status,
    WanState,
    WanStatus,
    WanVariant,
)
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, parse_scenario
from gatewayd_sim.pty import PtyPort
from tests.integration.sim_site import CODE, ESME, GSME, HUB, IHD, QUIET, STRANGER
from tests.waiting import LATE_S, wait_until

SCENARIOS = Path(__file__).resolve().parents[2] / "hw-fixtures" / "gatewayd_sim" / "scenarios"

# How long to wait for a frame that must come. Generous: it only bounds a failing test, and a
# loaded machine is slow. A frame that must NOT come is awaited with its own short timeout.
ARRIVES_S = 5.0
# A timer of the simulator fires on the loop's clock, never before its time (asyncio fires it
# at most one clock tick early): so its gaps are held to this tolerance from below.
TICK_S = 0.001


class PtyClient:
    """The host end of the line: the pty opened as serial libraries do, frames through the codec."""

    def __init__(self, path: Path, *, auto_ack: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        termios.tcflush(self.fd, termios.TCIFLUSH)  # as a serial library's open() does
        self.auto_ack = auto_ack
        self.raw = bytearray()
        self.received: list[tuple[float, Frame]] = []
        self._taken: set[int] = set()
        self._new = asyncio.Event()
        self.hangup = asyncio.Event()
        self.decoder = FrameDecoder(self._on_frame)
        self._seq = 0
        self.loop.add_reader(self.fd, self._readable)
        self._reading = True

    def close(self) -> None:
        self._stop_reading()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def _stop_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            self.hangup.set()
            return
        self.raw += data
        self.decoder.feed(data)

    def _on_frame(self, frame: Frame) -> None:
        self.received.append((self.loop.time(), frame))
        self._new.set()
        if self.auto_ack and frame.ftype == FrameType.EVENT:
            self.ack(frame)

    def send(self, frame: Frame) -> None:
        os.write(self.fd, encode_frame(frame))

    def ack(self, event: Frame) -> None:
        self.send(Frame(FrameType.ACK, event.seq, event.cmd))

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def send_request(self, cmd: int, payload: bytes = b"", seq: int | None = None) -> int:
        seq = self.next_seq() if seq is None else seq
        self.send(Frame(FrameType.REQUEST, seq, cmd, payload))
        return seq

    async def wait_for(
        self, match: Callable[[Frame], bool], timeout: float = ARRIVES_S
    ) -> tuple[float, Frame]:
        """The first not yet taken frame that matches, with its arrival time."""
        deadline = self.loop.time() + timeout
        while True:
            for i, (at, frame) in enumerate(self.received):
                if i not in self._taken and match(frame):
                    self._taken.add(i)
                    return at, frame
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame within {timeout} s")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def response(self, seq: int, cmd: int, timeout: float = ARRIVES_S) -> Frame:
        _, frame = await self.wait_for(
            lambda f: f.ftype == FrameType.RESPONSE and f.seq == seq and f.cmd == cmd, timeout
        )
        return frame

    async def request(self, cmd: int, payload: bytes = b"", timeout: float = ARRIVES_S) -> Frame:
        seq = self.send_request(cmd, payload)
        return await self.response(seq, cmd, timeout)

    async def event(self, code: int, timeout: float = ARRIVES_S) -> Frame:
        _, frame = await self.wait_for(
            lambda f: f.ftype == FrameType.EVENT and f.cmd == code, timeout
        )
        return frame

    def frames(self, ftype: FrameType, cmd: int | None = None) -> list[tuple[float, Frame]]:
        return [
            (at, f) for at, f in self.received if f.ftype == ftype and (cmd is None or f.cmd == cmd)
        ]

    async def wan(self) -> WanStatus:
        frame = await self.request(Cmd.GET_WAN_STATUS)
        assert frame.payload[0] == Status.OK
        return WanStatus.decode(frame.payload[1:])

    async def log(self) -> DeviceLog:
        frame = await self.request(Cmd.DEVICE_LOG_READ)
        assert frame.payload[0] == Status.OK
        return DeviceLog.decode(frame.payload[1:])

    async def add(
        self,
        eui: Eui64,
        dtype: DeviceType = DeviceType.ESME,
        timeout_s: int = 600,
        code: bytes = CODE,
    ) -> Status:
        frame = await self.request(
            Cmd.DEVICE_LOG_ADD, DeviceLogAdd(eui, dtype, code, timeout_s).encode()
        )
        return Status(frame.payload[0])


Maker = Callable[..., Awaitable[tuple[HubSimulator, PtyClient]]]


@pytest.fixture
async def make_hub(tmp_path: Path) -> AsyncIterator[Maker]:
    sims: list[HubSimulator] = []
    clients: list[PtyClient] = []

    async def make(
        toml: str = QUIET, *, speed: float = 1000.0, auto_ack: bool = True
    ) -> tuple[HubSimulator, PtyClient]:
        sim = HubSimulator(parse_scenario(dedent(toml)), tmp_path / "by-id" / "hub", speed=speed)
        await sim.start()
        sims.append(sim)
        client = PtyClient(sim.link, auto_ack=auto_ack)
        clients.append(client)
        return sim, client

    yield make
    for client in clients:
        client.close()
    for sim in sims:
        await sim.stop()


def hung_up(fd: int) -> bool:
    """What a client sees after an unplug: readable at once, then EOF or EIO (not EAGAIN)."""
    if not select.select([fd], [], [], 0)[0]:
        return False
    try:
        return os.read(fd, 16) == b""
    except BlockingIOError:
        return False
    except OSError as exc:
        return exc.errno == errno.EIO


def lexists(path: Path | str) -> bool:
    return os.path.lexists(path)


# --- framing and every command ---------------------------------------------------------


async def test_ping_answer_is_the_spec_example_byte_for_byte(make_hub: Maker) -> None:
    sim, client = await make_hub()
    os.write(client.fd, bytes.fromhex("7e 01 00 10 00 01 00 00 39 fd 7e"))
    await client.response(0x10, Cmd.PING)
    assert bytes(client.raw) == bytes.fromhex("7e 01 01 10 00 01 00 01 00 ca da 7e")
    assert [r.frame.seq for r in sim.frames_received] == [0x10]


async def test_get_info_describes_the_scenario_hub(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [hub]
        hw_variant = "dual_band"
        wan_variant = "long_range_radio"
        region = "north"
        firmware = "FW-9.9"
        """
    )
    frame = await client.request(Cmd.GET_INFO)
    assert frame.payload[0] == Status.OK
    info = HubInfo.decode(frame.payload[1:])
    assert info.eui64 == HUB
    assert info.hw_variant is HwVariant.DUAL_BAND
    assert info.wan_variant is WanVariant.LONG_RANGE_RADIO
    assert info.csp_region is CspRegion.NORTH
    assert info.firmware == "FW-9.9"
    assert 0 <= info.uptime_s < 1000


async def test_han_status_and_open_join_windows(make_hub: Maker) -> None:
    _, client = await make_hub(QUIET + "\n[hub]\nhan_channel = 21\nhan_pan_id = 0xBEEF\n")
    frame = await client.request(Cmd.GET_HAN_STATUS)
    status = HanStatus.decode(frame.payload[1:])
    assert (status.state, status.channel, status.subghz_channel) == (HanState.UP, 21, None)
    assert (status.pan_id, status.extended_pan_id, status.open_join_windows) == (0xBEEF, HUB, 0)
    assert await client.add(ESME) == Status.OK
    assert await client.add(GSME, DeviceType.GSME) == Status.OK
    frame = await client.request(Cmd.GET_HAN_STATUS)
    assert HanStatus.decode(frame.payload[1:]).open_join_windows == 2


async def test_dual_band_hub_reports_its_subghz_channel(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET + '\n[hub]\nhw_variant = "dual_band"\nhan_subghz_channel = 3\n'
    )
    frame = await client.request(Cmd.GET_HAN_STATUS)
    assert HanStatus.decode(frame.payload[1:]).subghz_channel == 3


async def test_device_log_add_read_remove(make_hub: Maker) -> None:
    sim, client = await make_hub()
    assert await client.add(STRANGER, DeviceType.IHD) == Status.OK
    log = await client.log()
    entry = log.find(STRANGER)
    assert entry is not None
    assert (entry.device_type, entry.join_state) == (DeviceType.IHD, JoinState.JOINING)
    assert (entry.rssi_dbm, entry.last_comms_s) == (None, None)
    frame = await client.request(Cmd.DEVICE_LOG_REMOVE, DeviceLogRemove(STRANGER).encode())
    assert frame.payload == bytes([Status.OK])
    assert (await client.log()).entries == ()
    assert sim.device_log().entries == ()


async def test_error_statuses_have_len_1(make_hub: Maker) -> None:
    sim, client = await make_hub()
    cases: list[tuple[int, bytes, Status]] = [
        (0x0099, b"", Status.UNKNOWN_COMMAND),
        (Cmd.DEVICE_LOG_ADD, DeviceLogAdd(ESME, 1, CODE, 60).encode()[:26], Status.BAD_LENGTH),
        (Cmd.DEVICE_LOG_REMOVE, ESME.raw[:7], Status.BAD_LENGTH),
        (Cmd.DEVICE_LOG_ADD, DeviceLogAdd(ESME, 1, bytes(16), 60).encode(), Status.BAD_PARAMETER),
        (Cmd.DEVICE_LOG_ADD, DeviceLogAdd(ESME, 1, CODE, 0).encode(), Status.BAD_PARAMETER),
        (Cmd.DEVICE_LOG_ADD, DeviceLogAdd(ESME, 1, CODE, 3601).encode(), Status.BAD_PARAMETER),
        (Cmd.DEVICE_LOG_REMOVE, ESME.raw, Status.NOT_FOUND),
    ]
    for cmd, payload, status in cases:
        frame = await client.request(cmd, payload)
        assert frame.payload == bytes([status]), (hex(cmd), payload.hex())
    assert sim.device_log().entries == ()
    # Bytes beyond the layout are ignored (later firmware may append fields).
    frame = await client.request(Cmd.PING, b"\x01\x02")
    assert frame.payload == bytes([Status.OK])


async def test_device_log_full_at_the_17th_entry(make_hub: Maker) -> None:
    _, client = await make_hub()
    for i in range(16):
        assert await client.add(Eui64(bytes([0, 0xDB, 0, 0, 0, 0, 1, i]))) == Status.OK
    assert await client.add(STRANGER) == Status.DEVICE_LOG_FULL
    # Re-adding one already in the log still works: it only opens a new window.
    assert await client.add(Eui64(bytes([0, 0xDB, 0, 0, 0, 0, 1, 3]))) == Status.OK
    assert len((await client.log()).entries) == 16


# --- exchanges: replay cache, BUSY, dropped answers -----------------------------------


async def test_replay_cache_answers_without_executing_again(make_hub: Maker) -> None:
    sim, client = await make_hub()
    client.send_request(Cmd.WAN_RECONNECT, seq=7)
    first = await client.response(7, Cmd.WAN_RECONNECT)
    client.send_request(Cmd.WAN_RECONNECT, seq=7)
    again = await client.response(7, Cmd.WAN_RECONNECT)
    assert first == again
    assert sim.executed[Cmd.WAN_RECONNECT] == 1
    assert (await client.wan()).attach_attempts == 2
    assert [r.replay for r in sim.responses_sent if r.frame.cmd == Cmd.WAN_RECONNECT] == [
        False,
        True,
    ]
    # 2.2 s later, past the host's last resend, the answer is still kept ...
    await asyncio.sleep(2.2)
    client.send_request(Cmd.WAN_RECONNECT, seq=7)
    await client.response(7, Cmd.WAN_RECONNECT)
    assert sim.executed[Cmd.WAN_RECONNECT] == 1
    # ... and past 3 s the same SEQ is a new request. (The sleeps are the spec's window itself.)
    await asyncio.sleep(1.0)
    client.send_request(Cmd.WAN_RECONNECT, seq=7)
    await client.response(7, Cmd.WAN_RECONNECT)
    assert sim.executed[Cmd.WAN_RECONNECT] == 2
    assert (await client.wan()).attach_attempts == 3


async def test_copy_of_a_request_still_executing_is_ignored(make_hub: Maker) -> None:
    sim, client = await make_hub(
        QUIET + '\n[faults]\nslow = [{ cmd = "GET_INFO", delay_ms = 200 }]\n'
    )
    client.send_request(Cmd.GET_INFO, seq=9)
    await wait_until(lambda: len(sim.frames_received) == 1)  # executing now, for 200 ms
    client.send_request(Cmd.GET_INFO, seq=9)
    at, _ = await client.wait_for(lambda f: f.ftype == FrameType.RESPONSE)
    # A quiet period longer than the 200 ms execution: a copy run again would have
    # answered by now. Nothing happening is the thing under test.
    await asyncio.sleep(0.3)
    assert len(client.frames(FrameType.RESPONSE)) == 1
    assert sim.executed[Cmd.GET_INFO] == 1
    sent_at = sim.frames_received[0].at
    assert 0.15 < at - sent_at < 0.2 + LATE_S  # the 200 ms execution, late only by the load


async def test_busy_when_more_than_four_requests_execute(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + '\n[faults]\nslow = [{ cmd = "PING", delay_ms = 300 }]\n')
    seqs = [client.send_request(Cmd.PING) for _ in range(5)]
    busy = await client.response(seqs[4], Cmd.PING)
    assert busy.payload == bytes([Status.BUSY])
    for seq in seqs[:4]:
        assert (await client.response(seq, Cmd.PING)).payload == bytes([Status.OK])
    # At once: the BUSY left before any of the four it had to wait for.
    answers = [f for _, f in client.frames(FrameType.RESPONSE, Cmd.PING)]
    assert answers[0] == busy
    assert sim.executed[Cmd.PING] == 4


async def test_busy_fault_answers_busy_n_times(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + '\n[faults]\nbusy = [{ cmd = "PING", count = 2 }]\n')
    answers = [(await client.request(Cmd.PING)).payload for _ in range(3)]
    assert answers == [bytes([Status.BUSY])] * 2 + [bytes([Status.OK])]
    assert sim.executed[Cmd.PING] == 1


async def test_dropped_response_is_replayed_to_the_resend(make_hub: Maker) -> None:
    sim, client = await make_hub(
        QUIET + '\n[faults]\ndrop_responses = [{ cmd = "GET_WAN_STATUS", count = 1 }]\n'
    )
    client.send_request(Cmd.GET_WAN_STATUS, seq=3)
    with pytest.raises(TimeoutError):
        await client.response(3, Cmd.GET_WAN_STATUS, timeout=0.3)
    client.send_request(Cmd.GET_WAN_STATUS, seq=3)
    frame = await client.response(3, Cmd.GET_WAN_STATUS)
    assert frame.payload[0] == Status.OK
    assert sim.executed[Cmd.GET_WAN_STATUS] == 1


# --- events: resends and ACKs ---------------------------------------------------------


async def test_event_resent_every_500ms_three_times_without_ack(make_hub: Maker) -> None:
    sim, client = await make_hub(auto_ack=False)
    sent = sim.emit_event(DeviceLogChanged())
    assert sent.seq == 1  # the first event after start
    for _ in range(4):
        _, frame = await client.wait_for(lambda f: f.ftype == FrameType.EVENT)
        assert (frame.seq, frame.cmd) == (1, EventCode.CHF_DEVICE_LOG_CHANGED)
    # The hub's own send times: when the copies were read depends on this machine's load.
    gaps = [b - a for a, b in itertools.pairwise(sent.sends)]
    assert len(gaps) == 3 and all(0.5 - TICK_S <= gap < 0.5 + LATE_S for gap in gaps), gaps
    with pytest.raises(TimeoutError):
        await client.wait_for(lambda f: f.ftype == FrameType.EVENT, timeout=0.7)
    assert (sent.resends, sent.dropped, sent.acked_at) == (3, True, None)


async def test_ack_stops_the_resends(make_hub: Maker) -> None:
    sim, client = await make_hub(auto_ack=False)
    sent = sim.emit_event(DeviceJoinFailed(GSME, JoinFailReason.WINDOW_EXPIRED))
    _, frame = await client.wait_for(lambda f: f.ftype == FrameType.EVENT)
    client.send(Frame(FrameType.ACK, frame.seq, frame.cmd + 1))  # wrong CMD: not an ACK of it
    client.ack(frame)
    # A quiet period past the 500 ms resend interval: no resend is the thing under test.
    await asyncio.sleep(0.8)
    assert len(client.frames(FrameType.EVENT)) == 1
    assert sent.acked_at is not None and not sent.dropped and sent.resends == 0
    assert [a.frame.cmd for a in sim.acks_received] == [frame.cmd + 1, frame.cmd]


async def test_ignore_acks_fault_resends_three_times_anyway(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + "\n[faults]\nignore_acks = true\n")
    sent = sim.emit_event(DeviceLogChanged())
    await wait_until(lambda: sent.resends == 3)
    await wait_until(lambda: len(client.frames(FrameType.EVENT)) >= 4)  # the last copy landed
    assert len(client.frames(FrameType.EVENT)) == 4
    assert sent.acked_at is not None


async def test_duplicate_events_fault_sends_each_event_twice(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + "\n[faults]\nduplicate_events = true\n")
    sent = sim.emit_event(DeviceLogChanged())
    await wait_until(lambda: len(client.frames(FrameType.EVENT)) == 2)
    assert {f.seq for _, f in client.frames(FrameType.EVENT)} == {sent.seq}
    # ACKed: no resend. A quiet period past the 500 ms resend interval proves it.
    await asyncio.sleep(0.6)
    assert len(client.frames(FrameType.EVENT)) == 2


# --- restart and cable pull -----------------------------------------------------------


async def test_restart_banner_then_hub_started_seq_0(make_hub: Maker) -> None:
    sim, client = await make_hub(
        """
        [hub]
        banner = "BOOT LINE ONE\\nBOOT LINE TWO\\n"
        [wan]
        timeline = [{ at = 0, state = "searching" }, { at = 200, state = "connected" }]
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A1"
        join_after_s = 100000
        """
    )
    await client.event(EventCode.WAN_STATE_CHANGED)
    assert (await client.wan()).state is WanState.CONNECTED
    assert await client.add(ESME, timeout_s=3600) == Status.OK
    # Restart a settled hub: every event so far (the add's log change) has its ACK.
    await wait_until(lambda: all(e.acked_at is not None for e in sim.events_sent))
    sim.restart(StartReason.WATCHDOG)
    started = await client.event(EventCode.HUB_STARTED)
    assert (started.seq, started.payload) == (0, bytes([StartReason.WATCHDOG]))
    raw = bytes(client.raw)
    banner_at = raw.index(b"BOOT LINE ONE\r\nBOOT LINE TWO\r\n")
    assert raw.index(encode_frame(started)) > banner_at
    # The log survived; its open window closed; the WAN attaches from the start again.
    entry = (await client.log()).find(ESME)
    assert entry is not None and entry.join_state is JoinState.WHITELISTED
    wan = await client.wan()
    assert (wan.state, wan.attach_attempts) == (WanState.SEARCHING, 1)
    assert sim.emit_event(DeviceLogChanged()).seq == 1
    await client.event(EventCode.WAN_STATE_CHANGED)  # connected again, 200 site s later
    assert sim.restarts[0][1] is StartReason.WATCHDOG


async def test_scenario_restart_runs_on_the_site_clock(make_hub: Maker) -> None:
    began = asyncio.get_running_loop().time()
    sim, client = await make_hub(
        QUIET + '\n[faults]\nrestart = [{ at = 100, reason = "remote" }]\n', speed=1000
    )
    started = await client.event(EventCode.HUB_STARTED)
    assert started.payload == bytes([StartReason.REMOTE_RESTART])
    assert b"Comms Hub simulator" in bytes(client.raw)  # the default banner
    # 100 site s at speed 1000: not before 0.1 real s, late only by the load.
    assert 0.1 - TICK_S <= sim.restarts[0][0] - began < 0.1 + LATE_S


async def test_cable_pull_link_disappears_and_comes_back(make_hub: Maker) -> None:
    sim, client = await make_hub()
    assert (await client.request(Cmd.PING)).payload == bytes([Status.OK])
    old_target = os.readlink(sim.link)
    sim.pull_cable(0.3)
    assert not lexists(sim.link)
    await asyncio.wait_for(client.hangup.wait(), ARRIVES_S)  # the client's read fails
    await wait_until(lambda: lexists(sim.link))
    assert os.readlink(sim.link) == sim.port_path
    assert old_target is not None
    client.close()
    again = PtyClient(sim.link)
    try:
        assert (await again.request(Cmd.PING)).payload == bytes([Status.OK])
        with pytest.raises(TimeoutError):
            await again.event(EventCode.HUB_STARTED, timeout=0.3)
        assert sim.restarts == []
    finally:
        again.close()


async def test_event_raised_during_a_short_pull_arrives_as_a_resend(make_hub: Maker) -> None:
    sim, client = await make_hub()
    sim.pull_cable(0.7)
    sent = sim.emit_event(DeviceLogChanged())
    await wait_until(lambda: lexists(sim.link))
    client.close()
    again = PtyClient(sim.link)
    try:
        frame = await again.event(EventCode.CHF_DEVICE_LOG_CHANGED)
        assert frame.seq == sent.seq
        await wait_until(lambda: sent.acked_at is not None)
        assert sent.delivered[0] is False and sent.delivered[-1] is True
    finally:
        again.close()


async def test_event_raised_during_a_long_pull_is_lost(make_hub: Maker) -> None:
    sim, client = await make_hub()
    sim.pull_cable(1.8)
    sent = sim.emit_event(DeviceLogChanged())
    await wait_until(lambda: lexists(sim.link))
    client.close()
    again = PtyClient(sim.link)
    try:
        with pytest.raises(TimeoutError):
            await again.event(EventCode.CHF_DEVICE_LOG_CHANGED, timeout=0.3)
        assert sent.dropped and sent.resends == 3 and not any(sent.delivered)
    finally:
        again.close()


async def test_scenario_cable_pull_runs_on_the_site_clock(make_hub: Maker) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    sim, _ = await make_hub(QUIET + "\n[faults]\ncable_pull = [{ at = 20, for = 30 }]\n", speed=100)
    await wait_until(lambda: not lexists(sim.link))
    await wait_until(lambda: lexists(sim.link))
    back_seen = loop.time()
    pulled_at, duration = sim.cable_pulls[0]
    # At 20 site s and for 30 (speed 100): never sooner or shorter, late only by the load.
    assert 0.2 - TICK_S <= pulled_at - began < 0.2 + LATE_S
    assert duration == pytest.approx(0.3)
    assert 0.3 - TICK_S <= back_seen - pulled_at < 0.3 + LATE_S


async def test_stop_removes_link_and_fds(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    sim = HubSimulator(parse_scenario(QUIET), tmp_path / "hub", speed=100)
    await sim.start()
    assert os.readlink(tmp_path / "hub") == sim.port_path
    sim.emit_event(DeviceLogChanged())
    await sim.stop()
    assert not lexists(tmp_path / "hub")
    assert sim.port_path is None
    assert set(os.listdir("/proc/self/fd")) <= before


# --- the site: WAN --------------------------------------------------------------------


async def test_wan_timeline_events_and_status(make_hub: Maker) -> None:
    sim, client = await make_hub(
        """
        [wan]
        timeline = [
          { at = 0, state = "searching", rssi = -99 },
          { at = 20, state = "registered", reg = "roaming", rssi = -80 },
          { at = 50, state = "connected", rssi = -70 },
        ]
        """,
        speed=100,
    )
    wan = await client.wan()
    assert (wan.state, wan.reg_state, wan.rssi_dbm) == (
        WanState.SEARCHING,
        RegState.SEARCHING,
        -99,
    )
    assert (wan.last_dcc_contact_s, wan.attach_attempts) == (None, 1)
    first = WanStatus.decode((await client.event(EventCode.WAN_STATE_CHANGED)).payload)
    assert (first.state, first.reg_state, first.rssi_dbm) == (
        WanState.REGISTERED,
        RegState.REGISTERED_ROAMING,
        -80,
    )
    second = WanStatus.decode((await client.event(EventCode.WAN_STATE_CHANGED)).payload)
    assert (second.state, second.reg_state) == (WanState.CONNECTED, RegState.REGISTERED_HOME)
    await wait_until(lambda: sim.wan_status().seconds_in_state >= 5)
    wan = await client.wan()
    assert wan.state is WanState.CONNECTED and wan.last_dcc_contact_s == 0
    assert wan.seconds_in_state >= 5  # site seconds
    # Counted from the change to connected at 50 site s, not from power-on: the hub's uptime,
    # read after, is ahead by at least those 50 s (whole seconds, each rounded down).
    info = HubInfo.decode((await client.request(Cmd.GET_INFO)).payload[1:])
    assert info.uptime_s - wan.seconds_in_state >= 49


async def test_wan_fault_recovered_by_reconnect(make_hub: Maker) -> None:
    sim, client = await make_hub((SCENARIOS / "wan_fault_recovers.toml").read_text(), speed=500)
    fault = await client.event(EventCode.WAN_STATE_CHANGED)
    while WanStatus.decode(fault.payload).state is not WanState.FAULT:
        fault = await client.event(EventCode.WAN_STATE_CHANGED)
    seq = client.send_request(Cmd.WAN_RECONNECT)
    response_at, _ = await client.wait_for(lambda f: f.ftype == FrameType.RESPONSE and f.seq == seq)
    event_at, frame = await client.wait_for(
        lambda f: f.ftype == FrameType.EVENT and f.cmd == EventCode.WAN_STATE_CHANGED
    )
    searching = WanStatus.decode(frame.payload)
    assert (searching.state, searching.attach_attempts) == (WanState.SEARCHING, 2)
    assert response_at <= event_at  # the answer leaves before the events it causes
    states: list[WanState | int] = []
    while not states or states[-1] is not WanState.CONNECTED:
        event = await client.event(EventCode.WAN_STATE_CHANGED)
        states.append(WanStatus.decode(event.payload).state)
    assert WanState.FAULT not in states
    assert sim.wan_status().state is WanState.CONNECTED


async def test_wan_fault_persists_across_reconnects(make_hub: Maker) -> None:
    _, client = await make_hub((SCENARIOS / "wan_fault_persists.toml").read_text(), speed=500)
    for attempt in (1, 2, 3):
        while True:
            status = WanStatus.decode((await client.event(EventCode.WAN_STATE_CHANGED)).payload)
            if status.state is WanState.FAULT:
                break
        assert (status.reg_state, status.attach_attempts) == (RegState.DENIED, attempt)
        await client.request(Cmd.WAN_RECONNECT)


async def test_reconnect_timelines_are_used_in_order(make_hub: Maker) -> None:
    sim, client = await make_hub(
        """
        [wan]
        timeline = [{ at = 0, state = "fault" }]
        reconnect_timelines = [[{ at = 1, state = "fault" }], [{ at = 1, state = "off" }]]
        reconnect_timeline = [{ at = 1, state = "connected" }]
        """,
        speed=1000,
    )
    seen = []
    for _ in range(3):
        await client.request(Cmd.WAN_RECONNECT)
        await wait_until(lambda: sim.wan_status().state is not WanState.SEARCHING)
        seen.append(sim.wan_status().state)
    assert seen == [WanState.FAULT, WanState.OFF, WanState.CONNECTED]
    assert (await client.wan()).attach_attempts == 4


async def test_rssi_only_changes_are_sent_at_most_once_a_second(make_hub: Maker) -> None:
    sim, client = await make_hub(
        """
        [wan]
        timeline = [
          { at = 0, state = "connected", rssi = -70 },
          { at = 1, rssi = -71 }, { at = 2, rssi = -72 }, { at = 3, rssi = -73 },
          { at = 4, rssi = -74 }, { at = 5, rssi = -75 },
        ]
        """,
        speed=10,
    )
    _, first = await client.wait_for(lambda f: f.ftype == FrameType.EVENT)
    _, second = await client.wait_for(lambda f: f.ftype == FrameType.EVENT)
    assert WanStatus.decode(first.payload).rssi_dbm == -71
    assert WanStatus.decode(second.payload).rssi_dbm == -75  # the latest, not each step
    # The hub's own send times: a second apart, never less; more only by the machine's load.
    first_sent, second_sent = (e.sends[0] for e in sim.events_sent)
    assert 1.0 - TICK_S <= second_sent - first_sent < 1.0 + LATE_S
    with pytest.raises(TimeoutError):
        await client.wait_for(lambda f: f.ftype == FrameType.EVENT, 0.3)


# --- the site: HAN joins --------------------------------------------------------------


async def test_esme_joins_with_events_and_log_entry(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A1"
        join_after_s = 10
        rssi = -55
        lqi = 230
        """,
        speed=100,
    )
    assert await client.add(ESME, DeviceType.ESME, timeout_s=60) == Status.OK
    await client.event(EventCode.CHF_DEVICE_LOG_CHANGED)
    joined = await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)
    connected = await client.event(EventCode.CH_CONNECTED_TO_ESME)
    assert joined.payload == connected.payload == ESME.raw
    entry = (await client.log()).find(ESME)
    assert entry is not None
    assert (entry.join_state, entry.band, entry.rssi_dbm, entry.lqi) == (
        JoinState.JOINED,
        Band.GHZ_2_4,
        -55,
        230,
    )
    assert entry.last_comms_s is not None and entry.last_comms_s < 30


async def test_han_down_reports_down_and_nothing_joins(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [han]
        up = false
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A1"
        join_after_s = 1
        """,
        speed=500,
    )
    frame = await client.request(Cmd.GET_HAN_STATUS)
    assert HanStatus.decode(frame.payload[1:]).state is HanState.DOWN
    await client.add(ESME, timeout_s=20)
    failed = DeviceJoinFailed.decode((await client.event(EventCode.DEVICE_JOIN_FAILED)).payload)
    assert failed == DeviceJoinFailed(ESME, JoinFailReason.WINDOW_EXPIRED)
    assert not client.frames(FrameType.EVENT, EventCode.DEVICE_JOIN_SUCCEEDED)


async def test_window_expiry_for_a_device_that_never_joins(make_hub: Maker) -> None:
    sim, client = await make_hub(
        QUIET + '\n[[han.devices]]\neui64 = "00-DB-12-34-56-78-90-A2"\nbehaviour = "never"\n',
        speed=100,
    )
    assert await client.add(GSME, DeviceType.GSME, timeout_s=10) == Status.OK
    assert await client.add(STRANGER, DeviceType.IHD, timeout_s=10) == Status.OK
    failures = [await client.event(EventCode.DEVICE_JOIN_FAILED) for _ in range(2)]
    reasons = {DeviceJoinFailed.decode(f.payload) for f in failures}
    assert reasons == {
        DeviceJoinFailed(GSME, JoinFailReason.WINDOW_EXPIRED),
        DeviceJoinFailed(STRANGER, JoinFailReason.WINDOW_EXPIRED),
    }
    log = await client.log()
    assert {e.join_state for e in log.entries} == {JoinState.JOIN_FAILED}
    assert sim.han_status().open_join_windows == 0


async def test_key_failure(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A2"
        behaviour = "key_failure"
        fail_after_s = 5
        """,
        speed=100,
    )
    await client.add(GSME, DeviceType.GSME, timeout_s=600)
    failed = DeviceJoinFailed.decode((await client.event(EventCode.DEVICE_JOIN_FAILED)).payload)
    assert failed.reason is JoinFailReason.KEY_ESTABLISHMENT_FAILED
    entry = (await client.log()).find(GSME)
    assert entry is not None and entry.join_state is JoinState.JOIN_FAILED
    assert entry.last_comms_s is not None  # the hub heard it try


async def test_gsme_joins_on_its_second_window(make_hub: Maker) -> None:
    _, client = await make_hub((SCENARIOS / "gsme_second_window.toml").read_text(), speed=500)
    await client.add(GSME, DeviceType.GSME, timeout_s=60)
    failed = DeviceJoinFailed.decode((await client.event(EventCode.DEVICE_JOIN_FAILED)).payload)
    assert failed == DeviceJoinFailed(GSME, JoinFailReason.WINDOW_EXPIRED)
    await client.add(GSME, DeviceType.GSME, timeout_s=60)  # re-add: window 2
    joined = await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)
    assert joined.payload == GSME.raw


async def test_join_later_than_the_window_fails(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET + '\n[[han.devices]]\neui64 = "00-DB-12-34-56-78-90-A3"\njoin_after_s = 20\n',
        speed=500,
    )
    await client.add(IHD, DeviceType.IHD, timeout_s=10)
    failed = DeviceJoinFailed.decode((await client.event(EventCode.DEVICE_JOIN_FAILED)).payload)
    assert failed == DeviceJoinFailed(IHD, JoinFailReason.WINDOW_EXPIRED)
    assert client.frames(FrameType.EVENT, EventCode.DEVICE_JOIN_SUCCEEDED) == []
    # A window long enough for the device's 20 s proves the first failure was the window's.
    await client.add(IHD, DeviceType.IHD, timeout_s=30)
    joined = await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)
    assert joined.payload == IHD.raw


async def test_joined_gsme_lost_later(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A2"
        join_after_s = 5
        lost_after_s = 40
        """,
        speed=500,
    )
    await client.add(GSME, DeviceType.GSME, timeout_s=60)
    await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)
    lost = await client.event(EventCode.THREE_LOST_GSME_SEARCHES_FAILED)
    assert lost.payload == GSME.raw
    entry = (await client.log()).find(GSME)
    assert entry is not None and entry.join_state is JoinState.LOST


async def test_868mhz_device_on_a_dual_band_hub(make_hub: Maker) -> None:
    _, client = await make_hub(
        QUIET
        + """
        [hub]
        hw_variant = "dual_band"
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A2"
        band = "868mhz"
        join_after_s = 5
        """,
        speed=500,
    )
    await client.add(GSME, DeviceType.GSME, timeout_s=60)
    await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)
    entry = (await client.log()).find(GSME)
    assert entry is not None and entry.band is Band.MHZ_868


# --- faults on the line ---------------------------------------------------------------


async def test_noise_between_frames_is_skipped(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + "\n[faults]\nnoise = { every_s = 0.02, bytes = 16 }\n")
    await wait_until(lambda: sim.faults_injected["noise"] >= 3)
    for _ in range(5):
        assert (await client.request(Cmd.PING)).payload == bytes([Status.OK])
        noise = sim.faults_injected["noise"]
        await wait_until(lambda: sim.faults_injected["noise"] > noise)  # noqa: B023
    assert client.decoder.stats.errors > 0
    # Noise never carries a flag: every 0x7E on the line opens or closes a real frame.
    assert bytes(client.raw).count(0x7E) == 2 * len(client.received)


async def test_corruption_makes_the_host_discard_frames(make_hub: Maker) -> None:
    sim, client = await make_hub(QUIET + "\n[faults]\ncorrupt = 1.0\n")
    client.send_request(Cmd.PING, seq=1)
    with pytest.raises(TimeoutError):
        await client.response(1, Cmd.PING, timeout=0.3)
    assert client.decoder.stats.errors >= 1
    assert sim.faults_injected["corrupt"] == 1


async def test_seeded_faults_are_deterministic(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        sim = HubSimulator(
            parse_scenario(QUIET + "\n[faults]\nnoise = { every_s = 0.01, bytes = 32 }\n"),
            tmp_path / name,
            seed=42,
        )
        await sim.start()
        client = PtyClient(sim.link)
        await wait_until(lambda: len(client.raw) >= 64)  # noqa: B023
        outputs.append(bytes(client.raw[:64]))
        client.close()
        await sim.stop()
    assert outputs[0] == outputs[1]


# --- real clients and whole jobs ------------------------------------------------------


async def test_a_plain_serial_library_client_talks_to_the_simulator(make_hub: Maker) -> None:
    sim, client = await make_hub()
    client.close()  # a second reader on the tty would take the answer
    # serialx's own synchronous API, none of our driver: reads that do not wait, no flock.
    port = serialx.serial_for_url(str(sim.link), baudrate=115200, read_timeout=0, exclusive=False)
    port.open()
    try:
        port.write(encode_frame(Frame(FrameType.REQUEST, 0x42, Cmd.PING)))
        frames: list[Frame] = []
        decoder = FrameDecoder(frames.append)

        def answered() -> bool:
            decoder.feed(port.read(256) or b"")
            return bool(frames)

        await wait_until(answered)
        assert frames == [Frame(FrameType.RESPONSE, 0x42, Cmd.PING, bytes([Status.OK]))]
    finally:
        port.close()


async def test_quick_scenario_job_at_default_speed(tmp_path: Path) -> None:
    """A host doing a whole job by the book on quick.toml: WAN up, then three joins."""
    sim = HubSimulator(load_scenario(SCENARIOS / "quick.toml"), tmp_path / "hub")
    began = time.monotonic()
    await sim.start()
    client = PtyClient(sim.link)
    try:
        while (await client.wan()).state is not WanState.CONNECTED:
            with contextlib.suppress(TimeoutError):
                await client.event(EventCode.WAN_STATE_CHANGED, timeout=0.2)
        wan_at = time.monotonic()
        for eui, dtype in ((ESME, DeviceType.ESME), (GSME, DeviceType.GSME), (IHD, DeviceType.IHD)):
            assert await client.add(eui, dtype, timeout_s=120) == Status.OK
        joined = {(await client.event(EventCode.DEVICE_JOIN_SUCCEEDED)).payload for _ in "abc"}
        assert joined == {ESME.raw, GSME.raw, IHD.raw}
        log = await client.log()
        assert {e.join_state for e in log.entries} == {JoinState.JOINED}
        took = time.monotonic() - began
        # Connected at 6 site s, speed 50; the whole job a few real seconds at most, where
        # real time (speed 1) would take minutes. Late only by the machine's load.
        assert 0.12 - TICK_S <= wan_at - began < 0.12 + LATE_S
        assert took < 1.5 + LATE_S, took
    finally:
        client.close()
        await sim.stop()


async def test_every_shipped_scenario_starts(tmp_path: Path) -> None:
    for path in sorted(SCENARIOS.glob("*.toml")):
        sim = HubSimulator(load_scenario(path), tmp_path / path.stem)
        await sim.start()
        client = PtyClient(sim.link)
        try:
            frame = await client.request(Cmd.GET_INFO)
            assert frame.payload[0] == Status.OK, path.name
            assert HubInfo.decode(frame.payload[1:]).eui64 == HUB
        finally:
            client.close()
            await sim.stop()


# --- the generic pty port -------------------------------------------------------------


async def test_pty_port_delivers_bytes_and_survives_replug(tmp_path: Path) -> None:
    got = bytearray()
    port = PtyPort(tmp_path / "dev" / "probe", got.extend)
    port.open()
    try:
        fd = os.open(port.link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        os.write(fd, b"\r\n\x7e\x00raw")  # raw mode: CR stays CR, nothing held back
        await wait_until(lambda: len(got) == 7)
        assert bytes(got) == b"\r\n\x7e\x00raw"
        assert port.write(b"hello")
        await wait_until(lambda: bool(select.select([fd], [], [], 0)[0]))
        assert os.read(fd, 16) == b"hello"
        port.unplug()
        assert not lexists(port.link) and not port.write(b"x")
        assert hung_up(fd)
        os.close(fd)
        port.replug()
        assert os.readlink(port.link) == port.path
        assert not lexists(str(port.link) + ".tmp")
    finally:
        port.close()
    assert not lexists(port.link)


async def test_pty_port_write_never_blocks_when_nobody_reads(tmp_path: Path) -> None:
    port = PtyPort(tmp_path / "hub", lambda data: None)
    port.open()
    try:
        began = time.monotonic()
        results = {port.write(b"x" * 4096) for _ in range(200)}  # far more than the queue
        assert False in results
        assert time.monotonic() - began < 1.0
    finally:
        port.close()
