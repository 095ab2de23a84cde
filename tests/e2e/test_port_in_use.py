"""End to end: a CLI verb run on a port another process holds, as a daemon holds its hubs.

The holder is this test's process; the verb runs as its own process and must exit 1 at once
with one line naming the port and the holder's PID, never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator

import pytest

from gatewayd_drivers.serial_link import open_unconfigured

IN_USE = "is already open in another process"


@pytest.fixture
def held_port() -> Iterator[str]:
    """A pty's device path, open and locked by this process."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = open_unconfigured(path)
    try:
        yield path
    finally:
        port.close()
        os.close(master)
        os.close(slave)


async def gatewayd(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("verb", "says"),
    [
        (("hub", "status", "--port"), "gatewayd: cannot open hub port {port}: "),
        (("survey", "--json", "--radio"), "gatewayd survey: cannot open the radio's port {port}: "),
    ],
)
async def test_a_verb_on_a_held_port_names_it_and_its_holder(
    held_port: str, verb: tuple[str, ...], says: str
) -> None:
    code, out, err = await gatewayd(*verb, held_port)
    assert code == 1 and out == ""
    assert "Traceback" not in err
    assert says.format(port=held_port) + f"{held_port} {IN_USE} (pid {os.getpid()}" in err
