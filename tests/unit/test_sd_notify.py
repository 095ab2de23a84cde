"""sd_notify: the datagrams systemd would receive, on a real unix socket; nothing without
NOTIFY_SOCKET; the watchdog at half of WATCHDOG_USEC, from the event loop."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewayd.daemon.sd_notify import Notifier, watchdog_interval_s


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.send(READY=1) is False


def test_ready_status_reloading_stopping(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready("idle; MQTT down")
    assert received(sock) == {"READY": "1", "STATUS": "idle; MQTT down"}
    n.status("running J-1\non hub")  # a newline must not start a new assignment
    assert received(sock) == {"STATUS": "running J-1 on hub"}
    n.reloading()
    msg = received(sock)
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
    n.stopping("stopping")
    assert received(sock) == {"STOPPING": "1", "STATUS": "stopping"}


def test_abstract_socket_names_are_supported() -> None:
    name = f"gatewayd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).send(READY=1)
        assert received(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).send(READY=1) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval_s(env) == expected


async def test_the_watchdog_is_kicked_from_the_loop(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sock.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # every 20 ms
    loop = asyncio.get_running_loop()
    started = loop.time()
    n.start_watchdog()
    assert [t for t in asyncio.all_tasks() if t.get_name() == "sd watchdog"]
    got: list[bytes] = []
    async with asyncio.timeout(5):
        while len(got) < 3:
            got.append(await loop.sock_recv(sock, 4096))
    assert got == [b"WATCHDOG=1"] * 3
    # The third kick is due two intervals after the first: kicks are paced, not a burst.
    assert loop.time() - started >= 0.035
    await n.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "sd watchdog"]


async def test_a_reader_that_is_behind_never_blocks_the_loop(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    sock.setblocking(False)
    n = Notifier({"NOTIFY_SOCKET": path})
    # Far more than the kernel queues for an unread datagram socket: a send that blocked
    # would hang here, so a refusal within the bound is what proves it does not.
    sent = 0
    while n.send(WATCHDOG=1):
        sent += 1
        assert sent < 10_000, "the kernel never refused: the reader was not behind"
    assert sent > 0
    n.ready("idle")  # refused for now; tried again from the loop until the reader catches up
    loop = asyncio.get_running_loop()
    seen: list[bytes] = []
    async with asyncio.timeout(5):
        while not any(d.startswith(b"READY=1") for d in seen):
            seen.append(await loop.sock_recv(sock, 4096))
    assert seen[-1] == b"READY=1\nSTATUS=idle"
    assert set(seen[:-1]) == {b"WATCHDOG=1"}
    await n.close()
