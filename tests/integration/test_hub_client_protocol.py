"""The hub client's protocol duties (spec section 3), checked frame by frame over a real pty."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.client import (
    HubClient,
    HubSilent,
    LinkLost,
    LinkUp,
    ProtocolTimers,
)
from gatewayd_drivers.commshub.errors import HubDisconnected, HubStatusError, HubTimeout
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.framing import Frame, FrameType
from gatewayd_drivers.commshub.messages import (
    Cmd,
    DeviceJoinSucceeded,
    DeviceType,
    HubStarted,
    RegState,
    StartReason,
    Status,
    WanState,
    WanStatus,
)
from tests.integration.scripted_hub import ScriptedHub
from tests.waiting import LATE_S, wait_until

EUI = Eui64.parse("00-DB-12-34-56-78-90-A1")
FAST_BACKOFF = BackoffSettings(first_s=0.02, max_s=0.1)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[ScriptedHub, HubClient]]:
    hub = ScriptedHub(tmp_path / "hub")
    hub.open()
    client = HubClient(str(hub.link), name="test", backoff=FAST_BACKOFF)
    await client.start()
    assert await client.wait_connected(5)
    try:
        yield hub, client
    finally:
        await client.stop()
        hub.close()


async def test_request_response_and_seq_sequence(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    seqs = []
    for _ in range(3):
        task = asyncio.create_task(client.ping())
        seen = await hub.next_request()
        assert seen.frame.cmd == Cmd.PING and seen.frame.payload == b""
        seqs.append(seen.frame.seq)
        hub.respond(seen.frame)
        await task
    assert seqs[1] == (seqs[0] + 1) % 256 and seqs[2] == (seqs[1] + 1) % 256


async def test_a_seq_is_not_reused_within_3s(rig: tuple[ScriptedHub, HubClient]) -> None:
    # Spec section 3: the hub keeps answers 3 s for replay, so a SEQ reused sooner would be
    # answered with a stale reply. 260 quick calls wrap the 8-bit SEQ.
    hub, client = rig
    sent: list[tuple[int, float]] = []

    async def answer_all() -> None:
        while len(sent) < 260:
            seen = await hub.next_request(timeout=30)
            sent.append((seen.frame.seq, seen.at))
            hub.respond(seen.frame)

    responder = asyncio.create_task(answer_all())
    for _ in range(260):
        await client.ping()
    await responder
    last_use: dict[int, float] = {}
    reuses = 0
    for seq, at in sent:
        if seq in last_use:
            reuses += 1
            assert at - last_use[seq] >= 2.95, f"SEQ {seq} reused after {at - last_use[seq]:.2f} s"
        last_use[seq] = at
    assert reuses == 4


async def test_resend_same_seq_after_1s_and_2s_then_timeout(
    rig: tuple[ScriptedHub, HubClient],
) -> None:
    hub, client = rig
    task = asyncio.create_task(client.get_wan_status())
    first = await hub.next_request()
    second = await hub.next_request()
    third = await hub.next_request()
    assert first.frame == second.frame == third.frame  # same SEQ and CMD
    # Resends after 1 s and 2 s: never sooner (0.1 s allows for reading the first one late);
    # later only by the machine's load.
    assert 0.9 < second.at - first.at < 1.0 + LATE_S
    assert 1.9 < third.at - first.at < 2.0 + LATE_S
    with pytest.raises(HubTimeout):
        await task
    assert client.stats.resends == 2 and client.stats.timeouts == 1


async def test_answer_to_a_resend_completes_the_call(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    status = WanStatus(WanState.CONNECTED, RegState.REGISTERED_HOME, -70, 5, 1, 1)
    task = asyncio.create_task(client.get_wan_status())
    await hub.next_request()  # dropped: the hub "did not hear" it
    resend = await hub.next_request()
    hub.respond(resend.frame, b"\x00" + status.encode())
    assert await task == status


async def test_busy_retries_with_new_seq_then_fails_after_five(
    rig: tuple[ScriptedHub, HubClient],
) -> None:
    hub, client = rig
    task = asyncio.create_task(client.ping())
    seen = []
    for _ in range(5):
        req = await hub.next_request()
        seen.append(req)
        hub.respond(req.frame, bytes([Status.BUSY]))
    with pytest.raises(HubStatusError) as err:
        await task
    assert err.value.code == Status.BUSY
    assert len({s.frame.seq for s in seen}) == 5  # a new SEQ each time
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= 0.095


async def test_busy_then_ok_succeeds(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    task = asyncio.create_task(client.ping())
    busy = await hub.next_request()
    hub.respond(busy.frame, bytes([Status.BUSY]))
    retry = await hub.next_request()
    hub.respond(retry.frame)
    await task  # the OK after BUSY completes the call without an error
    assert retry.frame.cmd == busy.frame.cmd == Cmd.PING
    assert retry.frame.seq != busy.frame.seq  # a retry after BUSY is a new request
    assert client.stats.busy == 1 and client.stats.timeouts == 0


async def test_error_status_is_typed(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    task = asyncio.create_task(client.device_log_remove(EUI))
    req = await hub.next_request()
    assert req.frame.payload == EUI.raw
    hub.respond(req.frame, bytes([Status.NOT_FOUND]))
    with pytest.raises(HubStatusError) as err:
        await task
    assert err.value.code == Status.NOT_FOUND


async def test_device_log_add_payload(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    code = bytes(range(1, 17))
    task = asyncio.create_task(client.device_log_add(EUI, DeviceType.GSME, code, 300))
    req = await hub.next_request()
    assert req.frame.payload == EUI.raw + b"\x02" + code + b"\x01\x2c"
    hub.respond(req.frame)
    await task


async def test_response_with_unknown_seq_or_cmd_is_dropped(
    rig: tuple[ScriptedHub, HubClient],
) -> None:
    hub, client = rig
    task = asyncio.create_task(client.ping())
    req = await hub.next_request()
    frames_in = client.snapshot_stats().frames_in
    hub.send(Frame(FrameType.RESPONSE, (req.frame.seq + 7) % 256, Cmd.PING, b"\x00"))
    hub.send(Frame(FrameType.RESPONSE, req.frame.seq, Cmd.GET_INFO, b"\x00"))
    await wait_until(lambda: client.snapshot_stats().frames_in == frames_in + 2)
    assert not task.done()
    hub.respond(req.frame)
    await task


async def test_malformed_ok_response_is_discarded(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    status = WanStatus(WanState.SEARCHING, RegState.SEARCHING, None, 1, None, 1)
    task = asyncio.create_task(client.get_wan_status())
    req = await hub.next_request()
    hub.respond(req.frame, b"\x00" + status.encode()[:5])  # short: a malformed frame
    resend = await hub.next_request()
    hub.respond(resend.frame, b"\x00" + status.encode())
    assert await task == status
    assert client.stats.malformed == 1


async def test_at_most_four_outstanding(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    tasks = [asyncio.create_task(client.ping()) for _ in range(6)]
    first = [await hub.next_request() for _ in range(4)]
    with pytest.raises(TimeoutError):
        await hub.next_request(timeout=0.3)
    hub.respond(first[0].frame)
    fifth = await hub.next_request()
    assert fifth.frame.seq not in {r.frame.seq for r in first}
    for r in [*first[1:], fifth]:
        hub.respond(r.frame)
    sixth = await hub.next_request()
    hub.respond(sixth.frame)
    await asyncio.gather(*tasks)


async def test_events_acked_at_once_and_acted_on_once(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    events = client.events()
    frame = Frame(FrameType.EVENT, 0x21, 0x8F49, EUI.raw)
    loop = asyncio.get_running_loop()
    sent = loop.time()
    hub.send(frame)
    ack = await hub.next_ack()
    assert ack.frame == Frame(FrameType.ACK, 0x21, 0x8F49, b"")
    # Before the hub's 500 ms resend on an idle machine; a loaded one may only be late.
    assert ack.at - sent < 0.5 + LATE_S
    for _ in range(3):  # the hub's resends, as if our ACK were lost
        hub.send(frame)
        await hub.next_ack()
    assert await asyncio.wait_for(events.get(), 5) == DeviceJoinSucceeded(EUI)
    # The client sorts out a duplicate in the same step as it ACKs it, so with all four
    # ACKs back every copy has been judged: nothing more is on its way.
    assert client.stats.duplicate_events == 3
    assert events.get_nowait() is None


async def test_unknown_and_malformed_events_are_still_acked(
    rig: tuple[ScriptedHub, HubClient],
) -> None:
    hub, _ = rig
    hub.send(Frame(FrameType.EVENT, 5, 0xBEEF, b"\x01"))
    assert (await hub.next_ack()).frame.cmd == 0xBEEF
    hub.send(Frame(FrameType.EVENT, 6, 0x8F49, b"\x01\x02"))  # short EUI-64
    assert (await hub.next_ack()).frame.seq == 6


async def test_hub_started_resets_dedupe(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    events = client.events()
    join = Frame(FrameType.EVENT, 1, 0x8F49, EUI.raw)
    started = Frame(FrameType.EVENT, 0, 0xC0F0, b"\x00")
    hub.send(started)
    hub.send(started)  # resend of the same restart
    hub.send(join)
    for _ in range(3):
        await hub.next_ack()
    assert await asyncio.wait_for(events.get(), 5) == HubStarted(StartReason.POWER_ON)
    assert await asyncio.wait_for(events.get(), 5) == DeviceJoinSucceeded(EUI)
    # Past the resend window a HUB_STARTED is a new restart, and event 1 is new again.
    # The window is measured on the loop's clock, so real time must pass: the sleep is
    # the thing under test.
    await asyncio.sleep(client.timers.restart_resend_s + 0.1)
    hub.send(started)
    hub.send(join)
    assert await asyncio.wait_for(events.get(), 5) == HubStarted(StartReason.POWER_ON)
    assert await asyncio.wait_for(events.get(), 5) == DeviceJoinSucceeded(EUI)


async def test_boot_banner_and_noise_are_skipped(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    events = client.events()
    banner = b"".join(f"CH bootloader 2.{i}: self test ok\r\n".encode() for i in range(40))
    hub.write(banner)
    hub.send(Frame(FrameType.EVENT, 0, 0xC0F0, b"\x00"))
    hub.write(b"\x00\xff\x13garbage\x7e\x7e")
    task = asyncio.create_task(client.ping())
    req = await hub.next_request()
    hub.respond(req.frame)
    await task
    assert await asyncio.wait_for(events.get(), 5) == HubStarted(StartReason.POWER_ON)


async def test_unplug_mid_request_then_recovery(rig: tuple[ScriptedHub, HubClient]) -> None:
    hub, client = rig
    events = client.events()
    task = asyncio.create_task(client.get_info())
    await hub.next_request()
    hub.unplug()
    with pytest.raises(HubDisconnected):
        await asyncio.wait_for(task, 5)
    assert isinstance(await asyncio.wait_for(events.get(), 5), LinkLost)
    with pytest.raises(HubDisconnected):
        await client.ping()  # fails at once while the port is gone, no hang
    # The loss counts one link error; a failed reopen of the vanished path, the next.
    await wait_until(lambda: client.snapshot_stats().link_errors >= 2)
    hub.open()  # the same path comes back
    assert await asyncio.wait_for(events.get(), 5) == LinkUp(reopened=True)
    task = asyncio.create_task(client.ping())
    req = await hub.next_request()
    hub.respond(req.frame)
    await task
    stats = client.snapshot_stats()
    assert stats.reconnects == 1 and stats.connected


async def test_reopen_backoff_does_not_busy_loop(tmp_path: Path) -> None:
    client = HubClient(str(tmp_path / "absent"), name="t", backoff=BackoffSettings(0.05, 0.2))
    await client.start()
    await asyncio.sleep(1.0)  # a second of retrying is what is counted: the thing under test
    errors = client.snapshot_stats().link_errors
    await client.stop()
    # 0.05, 0.1, 0.2, 0.2, ... : about seven tries a second, never hundreds.
    assert 3 <= errors <= 10


async def test_spec_timers_are_the_defaults() -> None:
    t = ProtocolTimers()
    assert (t.resend_after_s, t.max_resends, t.busy_retry_s, t.max_busy, t.max_outstanding) == (
        1.0,
        2,
        0.1,
        5,
        4,
    )


async def test_three_unanswered_requests_make_the_hub_silent_until_it_speaks(
    tmp_path: Path,
) -> None:
    # Domain rule "a silent hub": one timeout is retried (line noise); three in a row are
    # silence, announced once; any answer ends it. Fast resends keep the test short.
    hub = ScriptedHub(tmp_path / "hub")
    hub.open()
    timers = ProtocolTimers(resend_after_s=0.2)
    client = HubClient(str(hub.link), name="test", backoff=FAST_BACKOFF, timers=timers)
    await client.start()
    try:
        assert await client.wait_connected(5)
        with client.events() as events:
            for n in range(3):
                assert client.silence() is None, f"silent after {n} timeout(s)"
                with pytest.raises(HubTimeout):
                    await client.get_wan_status()
            silence = client.silence()
            assert silence is not None and silence.timeouts_in_a_row == 3
            assert isinstance(await asyncio.wait_for(events.get(), 5), HubSilent)
            assert client.stats.silences == 1
            task = asyncio.create_task(client.ping())
            while (seen := await hub.next_request()).frame.cmd != Cmd.PING:
                pass  # the unanswered WAN status requests and their resends
            hub.respond(seen.frame)
            await task
            assert client.silence() is None
            assert events.get_nowait() is None  # announced once, not once per timeout
    finally:
        await client.stop()
        hub.close()
