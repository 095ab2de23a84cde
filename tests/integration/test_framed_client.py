"""The lifecycle both serial clients share, on a real pty, with a toy newline protocol.

Pins what the hub and radio clients rely on: bytes reach the decoder, a frame cut by an
unplug never joins bytes after the replug, the hooks hear of the port in order (waiting
calls fail before the client hears the link is down), and ``stop`` fails what still waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.framed_client import FramedClient
from gatewayd_drivers.serial_link import LinkDown
from gatewayd_sim.pty import PtyPort


class Activity:
    """Set whenever anything happens, so a test waits on a condition, not on time."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def until(self, check: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():
                self._event.clear()
                await self._event.wait()


class LineDecoder:
    """Frames are lines: the smallest protocol with a partial frame to forget."""

    def __init__(self, frames: list[bytes], activity: Activity) -> None:
        self._frames = frames
        self._activity = activity
        self.buffered = bytearray()
        self.resets = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self.buffered += data
        while (end := self.buffered.find(b"\n")) >= 0:
            self._frames.append(bytes(self.buffered[:end]))
            del self.buffered[: end + 1]
        self._activity.poke()

    def reset(self) -> None:
        self.buffered.clear()
        self.resets += 1


class LineClient(FramedClient[LineDecoder]):
    def __init__(self, port: str) -> None:
        self.frames: list[bytes] = []
        self.calls: list[str] = []
        self.activity = Activity()
        super().__init__(
            port,
            LineDecoder(self.frames, self.activity),
            backoff=BackoffSettings(first_s=0.02, max_s=0.1),
        )

    def _record(self, call: str) -> None:
        self.calls.append(call)
        self.activity.poke()

    def _link_up(self, reopened: bool) -> None:
        self._record(f"up reopened={reopened}")

    def _link_down(self, reason: str) -> None:
        self._record("down")

    def _fail_waiting(self, reason: str) -> None:
        self._record(f"fail {reason}" if reason == "client stopped" else "fail")

    def send(self, data: bytes) -> None:
        self._link.write(data)


class Device:
    """The device end: a pty that records what the client wrote."""

    def __init__(self, link: Path, activity: Activity) -> None:
        self.received = bytearray()
        self._activity = activity
        self.port = PtyPort(link, self._on_data)

    def _on_data(self, data: bytes) -> None:
        self.received += data
        self._activity.poke()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[PtyPort, LineClient, Device]]:
    client = LineClient(str(tmp_path / "dev"))
    device = Device(tmp_path / "dev", client.activity)
    device.port.open()
    try:
        yield device.port, client, device
    finally:
        await client.stop()
        device.port.close()


async def test_frames_flow_both_ways(rig: tuple[PtyPort, LineClient, Device]) -> None:
    port, client, device = rig
    async with client:
        assert await client.wait_connected(5)
        assert client.connected and client.port == str(port.link)
        assert client.calls == ["up reopened=False"]
        port.write(b"hello\nwor")
        port.write(b"ld\n")
        await client.activity.until(lambda: len(client.frames) == 2)
        assert client.frames == [b"hello", b"world"]
        client.send(b"ping\n")
        await client.activity.until(lambda: device.received == b"ping\n")
    assert not client.connected
    assert client.calls[-1] == "fail client stopped"


async def test_an_unplug_drops_the_partial_frame_and_reopens(
    rig: tuple[PtyPort, LineClient, Device],
) -> None:
    port, client, _ = rig
    await client.start()
    assert await client.wait_connected(5)
    port.write(b"cut sho")
    await client.activity.until(lambda: client._decoder.buffered == b"cut sho")
    port.unplug()
    await client.activity.until(lambda: "down" in client.calls)
    # Waiting calls fail before the client is told, so no caller waits on a dead port.
    assert client.calls[1:] == ["fail", "down"]
    assert client.last_link_error is not None
    with pytest.raises(LinkDown):
        client.send(b"x\n")
    port.replug()
    await client.activity.until(lambda: "up reopened=True" in client.calls)
    port.write(b"rt\nwhole\n")
    await client.activity.until(lambda: b"whole" in client.frames)
    # "rt" alone: the bytes from before the unplug were forgotten, not glued on.
    assert client.frames == [b"rt", b"whole"]
    assert client._decoder.resets == 3  # opened, lost, reopened
    assert client.last_link_error is None


async def test_stop_before_the_port_ever_opened(tmp_path: Path) -> None:
    client = LineClient(str(tmp_path / "absent"))
    await client.start()
    assert not await client.wait_connected(0.1)
    assert "absent" in client._why_down()
    await client.stop()
    assert client.calls == ["fail client stopped"]
