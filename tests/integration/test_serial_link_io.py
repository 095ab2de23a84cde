"""The serial link's reading and writing, over real ptys: any descriptor number, any read error.

A daemon with hundreds of hub ports holds descriptors past 1023, where select() gives up;
and a read can fail in ways no one listed. Both must leave the link working: the first
by never calling select(), the second by treating the port as lost and reopening it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_drivers.commshub.messages import Cmd
from tests.integration.scripted_hub import ScriptedHub
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
