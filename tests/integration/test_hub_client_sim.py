"""The real hub client against the real hub simulator, over a pty and serialx.

``test_hub_client_protocol.py`` pins the client frame by frame against a
scripted hub and ``test_hub_simulator.py`` pins the simulator with raw bytes;
here the two meet as they do in the field: every command, every event kind,
and each of the simulator's faults (dropped answers, duplicate events, BUSY,
noise and bit flips, slow answers, a boot banner, a pulled cable).

The site's story runs fast (a high scenario speed); the LSP's own timers (1 s
resend, 500 ms event resend, 3 s replay) always run in real time, so only the
tests that need a resend take a second or two. Waits are on conditions with
timeouts, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from textwrap import dedent

import pytest

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.client import (
    ClientEvent,
    EventSubscription,
    HubClient,
    LinkLost,
    LinkUp,
)
from gatewayd_drivers.commshub.errors import HubDisconnected, HubStatusError
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.framing import Frame, FrameDecoder, FrameType
from gatewayd_drivers.commshub.messages import (
    Band,
    Cmd,
    ConnectedToEsme,
    CspRegion,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLogChanged,
    DeviceType,
    DisconnectedFromEsme,
    EventCode,
    HanState,
    HubEvent,
    HubStarted,
    HwVariant,
    JoinFailReason,
    JoinState,
    RegState,
    StartReason,
    Status,
    ThreeLostGsmeSearchesFailed,
    UnknownEvent,
    WanState,
    WanStateChanged,
    WanVariant,
    event_code,
)
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import parse_scenario
from tests.integration.sim_site import CODE, ESME, GSME, HUB, IHD, QUIET, STRANGER
from tests.waiting import LATE_S, wait_until

FAST_BACKOFF = BackoffSettings(first_s=0.02, max_s=0.1)


# --- rig ---------------------------------------------------------------------------------


class EventLog:
    """Everything a subscription delivers, collected in the background."""

    def __init__(self, sub: EventSubscription) -> None:
        self.sub = sub
        self.items: list[ClientEvent] = []
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for item in self.sub:
            self.items.append(item)

    async def close(self) -> None:
        self.sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def hub_events(self) -> list[HubEvent]:
        return [e for e in self.items if not isinstance(e, LinkUp | LinkLost)]

    def count(self, match: Callable[[ClientEvent], bool]) -> int:
        return sum(1 for e in self.items if match(e))

    async def wait_for(
        self, match: Callable[[ClientEvent], bool], timeout: float = 5.0, *, start: int = 0
    ) -> ClientEvent:
        """The first event from index ``start`` on (delivered or still to come) that matches."""
        found: list[ClientEvent] = []

        def check() -> bool:
            found[:] = [e for e in self.items[start:] if match(e)][:1]
            return bool(found)

        await wait_until(check, timeout)
        return found[0]


class Rig:
    def __init__(
        self, sim: HubSimulator, client: HubClient, log: EventLog, started_at: float
    ) -> None:
        self.sim = sim
        self.client = client
        self.log = log
        self.started_at = started_at  # loop time once the simulator ran: its clock began before

    def site_seconds(self) -> float:
        """Site seconds since the simulator started, at least (it started a little sooner)."""
        return (asyncio.get_running_loop().time() - self.started_at) * self.sim.speed

    def requests(self, cmd: Cmd) -> list[int]:
        """SEQs of the REQUEST frames for ``cmd`` the simulator received, resends included."""
        return [
            r.frame.seq
            for r in self.sim.frames_received
            if r.frame.ftype == FrameType.REQUEST and r.frame.cmd == cmd
        ]


Maker = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Maker]:
    """Start a simulator for an inline scenario, then a connected client subscribed to events."""
    stack = contextlib.AsyncExitStack()

    async def make(toml: str = QUIET, *, speed: float = 1000.0, seed: int = 1) -> Rig:
        scenario = parse_scenario(dedent(toml), source="test")
        sim = HubSimulator(scenario, tmp_path / "by-id" / "hub", speed=speed, seed=seed)
        await sim.start()
        started_at = asyncio.get_running_loop().time()
        stack.push_async_callback(sim.stop)
        client = HubClient(str(sim.link), name="sim", backoff=FAST_BACKOFF)
        log = EventLog(client.events())
        stack.push_async_callback(log.close)
        await client.start()
        stack.push_async_callback(client.stop)
        assert await client.wait_connected(5)
        await log.wait_for(lambda e: isinstance(e, LinkUp))
        # A fast site story may already have raised an event; the link came up once.
        assert log.items[0] == LinkUp(reopened=False)
        assert log.count(lambda e: isinstance(e, LinkUp | LinkLost)) == 1
        return Rig(sim, client, log, started_at)

    try:
        yield make
    finally:
        await stack.aclose()


async def assert_each_event_delivered_once(rig: Rig) -> None:
    """What the hub sent (each event once, resends aside) is what subscribers got, in order."""
    # Let the last events and their ACKs finish crossing the pty.
    await wait_until(lambda: len(rig.log.hub_events) >= len(rig.sim.events_sent))
    await wait_until(lambda: all(e.acked_at is not None for e in rig.sim.events_sent))
    sent = [(e.cmd, e.payload) for e in rig.sim.events_sent]
    got = [(event_code(e), e.encode()) for e in rig.log.hub_events]
    assert got == sent
    assert all(e.acked_at is not None for e in rig.sim.events_sent)


# --- 1. every command ------------------------------------------------------------------------


async def test_ping_is_answered_and_executed_once(make_rig: Maker) -> None:
    rig = await make_rig()
    for _ in range(3):
        await rig.client.ping()
    seqs = rig.requests(Cmd.PING)
    assert len(seqs) == 3 and len(set(seqs)) == 3
    assert rig.sim.executed[Cmd.PING] == 3
    stats = rig.client.snapshot_stats()
    assert stats.requests == 3 and stats.resends == 0 and stats.frame_errors == 0
    assert stats.frames_in == 3 and stats.connected


async def test_get_info_reports_the_scenario_hub(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [hub]
        eui64 = "00-DB-AB-CD-EF-01-23-45"
        hw_variant = "dual_band"
        wan_variant = "cellular_4g"
        region = "north"
        firmware = "TESTFW-9.9.9"
        """,
        speed=10,
    )
    info = await rig.client.get_info()
    assert info.eui64 == Eui64.parse("00-DB-AB-CD-EF-01-23-45")
    assert info.hw_variant is HwVariant.DUAL_BAND
    assert info.wan_variant is WanVariant.CELLULAR_4G
    assert info.csp_region is CspRegion.NORTH
    assert info.firmware == "TESTFW-9.9.9"
    assert 0 <= info.uptime_s <= rig.sim.site_time() + 1
    assert replace(info, uptime_s=0) == replace(rig.sim.hub_info(), uptime_s=0)


WAN_TIMELINE = """
[wan]
timeline = [
  { at = 0, state = "searching", rssi = -95 },
  { at = 10, state = "registered", rssi = -80 },
  { at = 12, state = "connected", rssi = -71 },
]
"""


def wan_event(state: WanState) -> Callable[[ClientEvent], bool]:
    return lambda e: isinstance(e, WanStateChanged) and e.status.state is state


async def test_get_wan_status_follows_the_attach_timeline(make_rig: Maker) -> None:
    # Speed 10: registered 1 real s and connected 1.2 real s after the simulator starts.
    rig = await make_rig(WAN_TIMELINE, speed=10)
    client, log = rig.client, rig.log
    first = await client.get_wan_status()
    assert first.state is WanState.SEARCHING and first.reg_state is RegState.SEARCHING
    assert first.rssi_dbm == -95
    assert first.last_dcc_contact_s is None and first.attach_attempts == 1

    registered = await log.wait_for(wan_event(WanState.REGISTERED))
    assert isinstance(registered, WanStateChanged)
    assert registered.status.reg_state is RegState.REGISTERED_HOME
    assert registered.status.rssi_dbm == -80
    mid = await client.get_wan_status()
    assert mid.state in (WanState.REGISTERED, WanState.CONNECTED)

    await log.wait_for(wan_event(WanState.CONNECTED))
    now = await client.get_wan_status()
    assert now.state is WanState.CONNECTED and now.reg_state is RegState.REGISTERED_HOME
    assert now.rssi_dbm == -71 and now.last_dcc_contact_s == 0 and now.attach_attempts == 1
    assert replace(now, seconds_in_state=0) == replace(rig.sim.wan_status(), seconds_in_state=0)
    states = [e.status.state for e in log.hub_events if isinstance(e, WanStateChanged)]
    assert states == [WanState.REGISTERED, WanState.CONNECTED]
    await assert_each_event_delivered_once(rig)


async def test_wan_reconnect_drops_to_searching_and_attaches_again(make_rig: Maker) -> None:
    rig = await make_rig(WAN_TIMELINE, speed=50)  # registered 0.2 real s in
    client, log = rig.client, rig.log
    await log.wait_for(wan_event(WanState.CONNECTED))
    before = len(log.items)

    await client.wan_reconnect()
    assert rig.sim.executed[Cmd.WAN_RECONNECT] == 1
    status = await client.get_wan_status()
    # At speed 50 the new attach may already have moved on; the attempt count has not.
    assert status.attach_attempts == 2
    await log.wait_for(wan_event(WanState.CONNECTED), start=before)
    after = [e.status for e in log.items[before:] if isinstance(e, WanStateChanged)]
    assert [s.state for s in after] == [
        WanState.SEARCHING,
        WanState.REGISTERED,
        WanState.CONNECTED,
    ]
    assert after[0].reg_state is RegState.SEARCHING and after[0].attach_attempts == 2
    assert all(s.attach_attempts == 2 for s in after)
    final = await client.get_wan_status()
    assert final.state is WanState.CONNECTED and final.attach_attempts == 2
    await assert_each_event_delivered_once(rig)


async def test_wan_reconnect_state_is_searching_right_after(make_rig: Maker) -> None:
    # Slow site: nothing moves for 10 site s = 10 real s, so the drop is visible.
    rig = await make_rig(WAN_TIMELINE, speed=1)
    await rig.client.wan_reconnect()
    status = await rig.client.get_wan_status()
    assert status.state is WanState.SEARCHING and status.reg_state is RegState.SEARCHING
    assert status.attach_attempts == 2 and status.seconds_in_state == 0
    event = await rig.log.wait_for(wan_event(WanState.SEARCHING))
    assert isinstance(event, WanStateChanged) and event.status.attach_attempts == 2


async def test_get_han_status_and_open_join_windows(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [hub]
        eui64 = "00-DB-AB-CD-EF-01-23-45"
        hw_variant = "dual_band"
        han_channel = 20
        han_subghz_channel = 3
        han_pan_id = 0xBEEF
        """,
        speed=1,
    )
    client = rig.client
    han = await client.get_han_status()
    assert han.state is HanState.UP
    assert han.channel == 20 and han.subghz_channel == 3 and han.pan_id == 0xBEEF
    assert han.extended_pan_id == Eui64.parse("00-DB-AB-CD-EF-01-23-45")
    assert han.extended_pan_id == (await client.get_info()).eui64
    assert han.open_join_windows == 0

    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    await client.device_log_add(GSME, DeviceType.GSME, CODE, 600)
    assert (await client.get_han_status()).open_join_windows == 2
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)  # a retry: same window count
    assert (await client.get_han_status()).open_join_windows == 2
    await client.device_log_remove(GSME)
    assert (await client.get_han_status()).open_join_windows == 1
    assert await client.get_han_status() == rig.sim.han_status()


async def test_single_band_hub_has_no_subghz_channel(make_rig: Maker) -> None:
    rig = await make_rig()
    han = await rig.client.get_han_status()
    assert han.subghz_channel is None and han.channel == 15 and han.pan_id == 0x1A2B
    assert han.extended_pan_id == HUB


async def test_device_log_add_read_remove(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [[han.devices]]
        eui64 = "00-DB-12-34-56-78-90-A1"
        join_after_s = 5
        rssi = -55
        lqi = 230
        """,
        speed=100,
    )
    client = rig.client
    assert (await client.device_log_read()).entries == ()

    await client.device_log_add(IHD, DeviceType.IHD, CODE, 3600)  # no profile: never joins
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 3600)  # joins 5 site s later
    await rig.log.wait_for(lambda e: isinstance(e, DeviceJoinSucceeded))
    log = await client.device_log_read()
    assert [e.eui64 for e in log.entries] == [IHD, ESME]
    ihd, esme = log.find(IHD), log.find(ESME)
    assert ihd is not None and esme is not None
    assert ihd.device_type is DeviceType.IHD and ihd.join_state is JoinState.JOINING
    assert ihd.rssi_dbm is None and ihd.last_comms_s is None and ihd.band is Band.GHZ_2_4
    assert esme.device_type is DeviceType.ESME and esme.join_state is JoinState.JOINED
    assert esme.rssi_dbm == -55 and esme.lqi == 230 and esme.last_comms_s is not None
    assert [replace(e, last_comms_s=0) for e in log.entries] == [
        replace(e, last_comms_s=0) for e in rig.sim.device_log().entries
    ]

    await client.device_log_remove(IHD)
    log = await client.device_log_read()
    assert [e.eui64 for e in log.entries] == [ESME]
    assert rig.sim.executed[Cmd.DEVICE_LOG_ADD] == 2
    assert rig.sim.executed[Cmd.DEVICE_LOG_REMOVE] == 1


async def test_device_log_errors_are_typed_with_the_hub_status(make_rig: Maker) -> None:
    rig = await make_rig()
    client = rig.client

    with pytest.raises(HubStatusError) as zero_code:
        await client.device_log_add(ESME, DeviceType.ESME, bytes(16), 600)
    assert zero_code.value.code is Status.BAD_PARAMETER
    assert zero_code.value.cmd == Cmd.DEVICE_LOG_ADD

    with pytest.raises(HubStatusError) as zero_timeout:
        await client.device_log_add(ESME, DeviceType.ESME, CODE, 0)
    assert zero_timeout.value.code is Status.BAD_PARAMETER

    with pytest.raises(HubStatusError) as too_long:
        await client.device_log_add(ESME, DeviceType.ESME, CODE, 3601)
    assert too_long.value.code is Status.BAD_PARAMETER

    with pytest.raises(HubStatusError) as unknown:
        await client.device_log_remove(STRANGER)
    assert unknown.value.code is Status.NOT_FOUND
    assert unknown.value.cmd == Cmd.DEVICE_LOG_REMOVE

    assert (await client.device_log_read()).entries == ()  # nothing was added
    assert rig.client.stats.busy == 0 and rig.client.stats.resends == 0


async def test_seventeenth_device_is_refused_with_device_log_full(make_rig: Maker) -> None:
    rig = await make_rig()
    client = rig.client
    euis = [Eui64(bytes([0x00, 0xDB, 0, 0, 0, 0, 0x10, i])) for i in range(17)]
    for eui in euis[:16]:
        await client.device_log_add(eui, DeviceType.IHD, CODE, 3600)
    with pytest.raises(HubStatusError) as full:
        await client.device_log_add(euis[16], DeviceType.IHD, CODE, 3600)
    assert full.value.code is Status.DEVICE_LOG_FULL
    # Re-adding one already in the log replaces it (a join retry), full or not.
    await client.device_log_add(euis[3], DeviceType.PPMID, CODE, 3600)
    log = await client.device_log_read()
    assert len(log.entries) == 16 and log.find(euis[16]) is None
    entry = log.find(euis[3])
    assert entry is not None and entry.device_type is DeviceType.PPMID
    # A free entry makes room again.
    await client.device_log_remove(euis[0])
    await client.device_log_add(euis[16], DeviceType.IHD, CODE, 3600)
    assert (await client.device_log_read()).find(euis[16]) is not None


# --- 2. every event kind ---------------------------------------------------------------------


# At speed 100 the first event comes 0.2 real s after the simulator starts: the client
# has opened the port by then, so no event is lost to the open's flush and resent late.
EVENTFUL = """
[wan]
timeline = [
  { at = 0, state = "searching", rssi = -95 },
  { at = 20, state = "registered", rssi = -80 },
  { at = 24, state = "connected", rssi = -71 },
]

[[han.devices]]
label = "ESME"
eui64 = "00-DB-12-34-56-78-90-A1"
join_after_s = 5
lost_after_s = 20

[[han.devices]]
label = "GSME"
eui64 = "00-DB-12-34-56-78-90-A2"
join_after_s = 5
lost_after_s = 10

[[han.devices]]
label = "IHD with the wrong install code"
eui64 = "00-DB-12-34-56-78-90-A3"
behaviour = "key_failure"
fail_after_s = 5
"""


async def test_every_event_kind_is_acked_and_delivered_once(make_rig: Maker) -> None:
    rig = await make_rig(EVENTFUL, speed=100)
    client, sim, log = rig.client, rig.sim, rig.log
    await log.wait_for(wan_event(WanState.CONNECTED))

    await client.device_log_add(ESME, DeviceType.ESME, CODE, 60)
    await client.device_log_add(GSME, DeviceType.GSME, CODE, 60)
    await client.device_log_add(IHD, DeviceType.IHD, CODE, 60)
    await client.device_log_add(STRANGER, DeviceType.CAD, CODE, 3)  # no profile: expires
    await log.wait_for(lambda e: isinstance(e, ThreeLostGsmeSearchesFailed))
    await log.wait_for(lambda e: isinstance(e, DisconnectedFromEsme))
    await log.wait_for(
        lambda e: isinstance(e, DeviceJoinFailed) and e.reason is JoinFailReason.WINDOW_EXPIRED
    )
    await log.wait_for(lambda e: isinstance(e, DeviceJoinFailed) and e.eui64 == IHD)

    sim.restart(StartReason.WATCHDOG)
    await log.wait_for(lambda e: isinstance(e, HubStarted))
    unknown = UnknownEvent(0xC0AB, b"\x01\x02\x03")
    sim.emit_event(unknown)
    await log.wait_for(lambda e: isinstance(e, UnknownEvent))
    await assert_each_event_delivered_once(rig)

    assert ConnectedToEsme(ESME) in log.items
    assert DeviceJoinSucceeded(ESME) in log.items and DeviceJoinSucceeded(GSME) in log.items
    assert DeviceJoinFailed(IHD, JoinFailReason.KEY_ESTABLISHMENT_FAILED) in log.items
    assert DeviceJoinFailed(STRANGER, JoinFailReason.WINDOW_EXPIRED) in log.items
    assert ThreeLostGsmeSearchesFailed(GSME) in log.items
    assert DisconnectedFromEsme(ESME) in log.items
    assert HubStarted(StartReason.WATCHDOG) in log.items
    assert unknown in log.items
    # 4 adds, 2 joins, 2 losses, 1 key failure, 1 expired window.
    assert log.count(lambda e: isinstance(e, DeviceLogChanged)) == 10
    kinds = {event_code(e) for e in log.hub_events}
    assert kinds >= {
        EventCode.WAN_STATE_CHANGED,
        EventCode.DEVICE_JOIN_SUCCEEDED,
        EventCode.DEVICE_JOIN_FAILED,
        EventCode.CH_CONNECTED_TO_ESME,
        EventCode.CH_DISCONNECTED_FROM_ESME,
        EventCode.THREE_LOST_GSME_SEARCHES_FAILED,
        EventCode.CHF_DEVICE_LOG_CHANGED,
        EventCode.HUB_STARTED,
        0xC0AB,
    }

    await assert_each_event_delivered_once(rig)
    # Every copy the hub wrote was ACKed once, so the hub never had to resend.
    assert all(e.resends == 0 and not e.dropped for e in sim.events_sent)
    acks = Counter((a.frame.seq, a.frame.cmd) for a in sim.acks_received)
    sent = Counter((e.seq, e.cmd) for e in sim.events_sent)
    assert acks == sent
    assert all(a.frame.payload == b"" for a in sim.acks_received)
    stats = client.snapshot_stats()
    assert stats.events == len(sim.events_sent) and stats.duplicate_events == 0
    assert stats.malformed == 0


async def test_event_with_unusable_payload_is_acked_not_delivered(make_rig: Maker) -> None:
    rig = await make_rig()
    # DEVICE_JOIN_SUCCEEDED needs 8 payload bytes; this one has 1.
    sent = rig.sim.emit_event(UnknownEvent(EventCode.DEVICE_JOIN_SUCCEEDED, b"\x01"))
    good = rig.sim.emit_event(DeviceJoinSucceeded(ESME))
    await rig.log.wait_for(lambda e: isinstance(e, DeviceJoinSucceeded))
    await wait_until(lambda: sent.acked_at is not None and good.acked_at is not None)
    assert rig.log.hub_events == [DeviceJoinSucceeded(ESME)]
    assert good.acked_at is not None and sent.resends == 0
    assert rig.client.stats.malformed == 1


# --- 3. resend after a dropped response --------------------------------------------------------


async def test_dropped_response_is_covered_by_a_resend_and_a_replay(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        drop_responses = [{ cmd = "DEVICE_LOG_ADD", count = 1 }]
        """,
        speed=1,
    )
    client, sim = rig.client, rig.sim
    started = time.monotonic()
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    # One resend, 1 s after the first send: never sooner; later only by the machine's load.
    assert 0.9 < time.monotonic() - started < 1.0 + LATE_S
    assert client.stats.resends == 1 and client.stats.timeouts == 0
    seqs = rig.requests(Cmd.DEVICE_LOG_ADD)
    assert len(seqs) == 2 and seqs[0] == seqs[1]  # the resend keeps the SEQ
    assert sim.executed[Cmd.DEVICE_LOG_ADD] == 1  # replayed, not executed again
    answers = [r for r in sim.responses_sent if r.frame.cmd == Cmd.DEVICE_LOG_ADD]
    assert [(r.replay, r.transmitted) for r in answers] == [(False, False), (True, True)]
    assert sim.faults_injected["drop_response"] == 1
    log = await client.device_log_read()
    assert [e.eui64 for e in log.entries] == [ESME]
    await rig.log.wait_for(lambda e: isinstance(e, DeviceLogChanged))
    assert rig.log.count(lambda e: isinstance(e, DeviceLogChanged)) == 1


async def test_second_resend_is_replayed_not_executed_again(make_rig: Maker) -> None:
    rig = await make_rig(QUIET, speed=1)
    client, sim = rig.client, rig.sim
    # The line loses the first two answers to DEVICE_LOG_ADD (the fresh one and its first
    # replay), as two bit flips would; the scenario's faults cannot single out a replay.
    lsp = sim._lsp
    assert lsp is not None
    transmit = lsp._transmit
    lost: list[bytes] = []

    def lossy(wire: bytes) -> bool:
        frames: list[Frame] = []
        FrameDecoder(frames.append).feed(wire)
        is_add_answer = bool(frames) and frames[0].ftype == FrameType.RESPONSE
        if is_add_answer and frames[0].cmd == Cmd.DEVICE_LOG_ADD and len(lost) < 2:
            lost.append(wire)
            return True
        return transmit(wire)

    lsp._transmit = lossy
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    assert len(lost) == 2 and client.stats.resends == 2
    seqs = rig.requests(Cmd.DEVICE_LOG_ADD)
    assert len(seqs) == 3 and len(set(seqs)) == 1
    # The same SEQ and CMD within the request's life: answered from the replay cache.
    assert sim.executed[Cmd.DEVICE_LOG_ADD] == 1


# --- 4. duplicate events and ignored ACKs ------------------------------------------------------


async def test_duplicate_event_copies_are_acted_on_once(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        duplicate_events = true
        """
    )
    sim, log = rig.sim, rig.log
    events: list[HubEvent] = [
        DeviceJoinSucceeded(ESME),
        DeviceJoinSucceeded(GSME),
        DeviceLogChanged(),
        DeviceLogChanged(),  # same CMD and payload, new SEQ: a new event
    ]
    for event in events:
        sim.emit_event(event)
    # Every event is written twice; the client ACKs both copies.
    await wait_until(lambda: len(sim.acks_received) == 2 * len(events))
    await wait_until(lambda: rig.client.stats.duplicate_events == len(events))
    assert log.hub_events == events
    await assert_each_event_delivered_once(rig)
    assert all(e.resends == 0 for e in sim.events_sent)  # the first ACK stopped the resends


async def test_ignored_acks_make_the_hub_resend_yet_each_event_is_delivered_once(
    make_rig: Maker,
) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        duplicate_events = true
        ignore_acks = true
        """
    )
    sim, log, client = rig.sim, rig.log, rig.client
    events: list[HubEvent] = [
        DeviceJoinSucceeded(ESME),
        DeviceJoinFailed(GSME, JoinFailReason.KEY_ESTABLISHMENT_FAILED),
        UnknownEvent(0xC0AB, b"\xff"),
    ]
    sent = [sim.emit_event(event) for event in events]
    # 1 send + 3 resends, 500 ms apart, each written twice: 8 copies of each event.
    copies = 8 * len(events)
    await wait_until(lambda: all(len(s.sends) == 4 for s in sent))
    await wait_until(lambda: client.stats.duplicate_events == copies - len(events))
    assert log.hub_events == events
    assert client.stats.events == len(events)
    # The client ACKed every copy (the last ACKs may still be on their way to the hub).
    await wait_until(lambda: len(sim.acks_received) == copies)
    assert all(s.acked_at is not None and not s.dropped for s in sent)
    await assert_each_event_delivered_once(rig)


# --- 5. BUSY --------------------------------------------------------------------------------


async def test_busy_twice_then_ok_with_new_seqs(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        busy = [{ cmd = "GET_INFO", count = 2 }]
        """
    )
    client, sim = rig.client, rig.sim
    info = await client.get_info()
    assert info.eui64 == HUB
    assert client.stats.busy == 2 and client.stats.resends == 0
    seqs = rig.requests(Cmd.GET_INFO)
    assert len(seqs) == 3 and len(set(seqs)) == 3  # each retry takes a new SEQ
    times = [
        r.at
        for r in sim.frames_received
        if r.frame.ftype == FrameType.REQUEST and r.frame.cmd == Cmd.GET_INFO
    ]
    assert all(b - a >= 0.095 for a, b in itertools.pairwise(times))
    statuses = [r.frame.payload[0] for r in sim.responses_sent if r.frame.cmd == Cmd.GET_INFO]
    assert statuses == [Status.BUSY, Status.BUSY, Status.OK]
    assert sim.executed[Cmd.GET_INFO] == 1


async def test_five_busy_answers_fail_the_call_with_busy(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        busy = [{ cmd = "DEVICE_LOG_ADD", count = 5 }]
        """
    )
    client, sim = rig.client, rig.sim
    with pytest.raises(HubStatusError) as busy:
        await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    assert busy.value.code is Status.BUSY and busy.value.cmd == Cmd.DEVICE_LOG_ADD
    assert client.stats.busy == 5
    assert len(set(rig.requests(Cmd.DEVICE_LOG_ADD))) == 5
    assert sim.executed[Cmd.DEVICE_LOG_ADD] == 0
    assert (await client.device_log_read()).entries == ()
    # The hub is no longer busy: the next call goes through at once.
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    assert sim.executed[Cmd.DEVICE_LOG_ADD] == 1


# --- 6. noise and corrupted frames ------------------------------------------------------------


async def test_noise_and_bit_flips_are_skipped_and_resends_cover_them(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        noise = { every_s = 0.02, bytes = 40 }
        corrupt = 0.15
        """,
        seed=3,
    )
    client, sim = rig.client, rig.sim
    calls = 16
    for i in range(calls):
        if i % 2:
            await client.ping()
        else:
            assert (await client.get_info()).eui64 == HUB
    stats = client.snapshot_stats()
    assert sim.faults_injected["noise"] > 0 and sim.faults_injected["corrupt"] > 0
    assert stats.frame_errors > 0
    # Each corrupted answer cost one resend (answered from the replay cache).
    assert stats.resends >= 1 and stats.timeouts == 0
    assert sim.executed[Cmd.PING] + sim.executed[Cmd.GET_INFO] >= calls
    replays = [r for r in sim.responses_sent if r.replay]
    assert len(replays) == stats.resends


async def test_noisy_line_still_delivers_events_once(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        noise = { every_s = 0.01, bytes = 100 }
        """
    )
    # Let some bursts reach the line first: noise counts as an error once a flag follows it.
    await wait_until(lambda: rig.sim.faults_injected["noise"] >= 5)
    events: list[HubEvent] = [DeviceJoinSucceeded(ESME), DeviceLogChanged()]
    for event in events:
        rig.sim.emit_event(event)
    await wait_until(lambda: len(rig.log.hub_events) == len(events))
    assert rig.log.hub_events == events
    await rig.client.ping()
    assert rig.client.snapshot_stats().frame_errors > 0


# --- 7. boot banner ---------------------------------------------------------------------------


async def test_restart_banner_is_skipped_and_hub_started_delivered(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [hub]
        banner = "CHSIM bootloader 1.3\\nComms Hub simulator\\nStarting WAN..."
        """,
        speed=10,
    )
    client, sim, log = rig.client, rig.sim, rig.log
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    await log.wait_for(lambda e: isinstance(e, DeviceLogChanged))
    # The client ACKs before it delivers, but the ACK may still be in the pty: a restart now
    # would wipe the hub's pending events and the late ACK would find nothing to settle.
    await wait_until(lambda: all(e.acked_at is not None for e in sim.events_sent))
    errors_before = client.snapshot_stats().frame_errors
    bytes_before = client.snapshot_stats().bytes_in

    # Let the hub run a while before the restart, so that an uptime not reset would show.
    await wait_until(lambda: rig.site_seconds() >= 5)
    sim.restart(StartReason.POWER_ON)
    started = await log.wait_for(lambda e: isinstance(e, HubStarted))
    assert started == HubStarted(StartReason.POWER_ON)
    await wait_until(lambda: sim.events_sent[-1].acked_at is not None)
    assert sim.events_sent[-1].seq == 0 and sim.events_sent[-1].resends == 0

    stats = client.snapshot_stats()
    banner = sim.scenario.hub.banner_bytes()
    assert stats.bytes_in - bytes_before >= len(banner)  # the banner did reach the client
    assert stats.frame_errors > errors_before  # ... and was skipped as a broken frame
    assert stats.reconnects == 0 and stats.connected  # a restart is not an unplug

    await client.ping()
    info = await client.get_info()
    # Counted from the restart: at most the site time since it (however slow this machine is),
    # where an uptime counted from the start would be at least 5 site seconds more.
    since_restart = (asyncio.get_running_loop().time() - sim.restarts[-1][0]) * sim.speed
    assert info.eui64 == HUB and info.uptime_s <= since_restart + 1
    log_after = await client.device_log_read()
    entry = log_after.find(ESME)
    assert entry is not None and entry.join_state is JoinState.WHITELISTED  # window closed
    assert log.count(lambda e: isinstance(e, HubStarted)) == 1

    # Events after the restart are numbered from 1 again and must not be taken for old ones.
    sim.emit_event(DeviceLogChanged())
    await wait_until(lambda: log.count(lambda e: isinstance(e, DeviceLogChanged)) == 2)
    assert sim.events_sent[-1].seq == 1
    await assert_each_event_delivered_once(rig)


# --- 8. unplug during a request -------------------------------------------------------------


async def test_cable_pulled_during_a_request(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        slow = [{ cmd = "DEVICE_LOG_READ", delay_ms = 800 }]
        """
    )
    client, sim, log = rig.client, rig.sim, rig.log
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)

    read = asyncio.create_task(client.device_log_read())
    await wait_until(lambda: len(rig.requests(Cmd.DEVICE_LOG_READ)) == 1)
    pulled_at = time.monotonic()
    sim.pull_cable(0.4)
    with pytest.raises(HubDisconnected):
        await asyncio.wait_for(read, 10)
    # Typed, and sooner than the request's own 3 s timeout (1 s and 2 s resends) could end it.
    assert time.monotonic() - pulled_at < 3.0

    lost = await log.wait_for(lambda e: isinstance(e, LinkLost))
    assert isinstance(lost, LinkLost) and lost.reason
    assert not client.connected
    for call in (client.ping, client.get_info, client.device_log_read):
        began = time.monotonic()
        with pytest.raises(HubDisconnected):
            await call()
        assert time.monotonic() - began < 1.0  # at once: not after a 1 s resend
    assert client.stats.timeouts == 0

    await log.wait_for(lambda e: isinstance(e, LinkUp) and e.reopened)
    await client.ping()
    entries = (await client.device_log_read()).entries
    assert [e.eui64 for e in entries] == [ESME]  # the hub kept its state
    stats = client.snapshot_stats()
    assert stats.reconnects == 1 and stats.connected and stats.timeouts == 0
    assert [type(e) for e in log.items if isinstance(e, LinkUp | LinkLost)] == [
        LinkUp,
        LinkLost,
        LinkUp,
    ]
    assert log.count(lambda e: isinstance(e, HubStarted)) == 0  # not a restart


# --- 9. slow answers ---------------------------------------------------------------------------


async def test_slow_answer_under_a_second_needs_no_resend(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        slow = [{ cmd = "DEVICE_LOG_READ", delay_ms = 600 }]
        """
    )
    started = time.monotonic()
    log = await rig.client.device_log_read()
    elapsed = time.monotonic() - started
    assert log.entries == ()
    # Not before the hub's 600 ms; the resend count below, not a bound, proves no resend.
    assert 0.55 < elapsed < 0.6 + LATE_S
    assert rig.client.stats.resends == 0
    assert len(rig.requests(Cmd.DEVICE_LOG_READ)) == 1
    assert rig.sim.executed[Cmd.DEVICE_LOG_READ] == 1


async def test_slow_answer_over_a_second_is_resent_but_executed_once(make_rig: Maker) -> None:
    rig = await make_rig(
        QUIET
        + """
        [faults]
        slow = [{ cmd = "DEVICE_LOG_ADD", delay_ms = 1300 }]
        """,
        speed=1,
    )
    client, sim = rig.client, rig.sim
    started = time.monotonic()
    await client.device_log_add(ESME, DeviceType.ESME, CODE, 600)
    # Not before the hub's 1.3 s; one resend (counted below), and late only by the load.
    assert 1.25 < time.monotonic() - started < 1.3 + LATE_S
    assert client.stats.resends == 1 and client.stats.timeouts == 0
    seqs = rig.requests(Cmd.DEVICE_LOG_ADD)
    assert len(seqs) == 2 and seqs[0] == seqs[1]
    assert sim.executed[Cmd.DEVICE_LOG_ADD] == 1  # the copy arrived while executing: ignored
    answers = [r for r in sim.responses_sent if r.frame.cmd == Cmd.DEVICE_LOG_ADD]
    assert len(answers) == 1 and not answers[0].replay
    assert len((await client.device_log_read()).entries) == 1
