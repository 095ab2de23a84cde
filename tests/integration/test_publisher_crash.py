"""The publisher under SIGKILL, against a real mosquitto: a job counted settled is never lost,
and what reaches the back office, across kills and restarts, has no hole and no reordering
on any topic; anything that arrives twice says it is a replay.

A child process emits bursts of events (several per loop turn, so they share a commit) and a
result now and then, printing each job it is told is settled; the test kills it mid-stream,
runs a second child over the same state directory to drain what the first left, and checks
everything a subscribed back office received. Three rounds, killed at different points.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.integration.publisher_crash_child import PREFIX, TOPICS_PER_RUN, topic
from tests.mqtt_broker import Broker

REPO = Path(__file__).resolve().parents[2]
# Settled jobs to see before each kill: different points of the emit/commit/publish cycle.
KILL_AFTER_SETTLED = (3, 7, 5)
LINE_TIMEOUT_S = 60


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    # The back office may fall behind a burst: the broker queues for it instead of dropping.
    b.config.write_text(b.config.read_text() + "max_queued_messages 0\n")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@dataclass
class BackOffice:
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, broker: Broker) -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier="backoffice") as client:
            await client.subscribe(f"{PREFIX}/#", qos=1)
            self.subscribed.set()
            async for msg in client.messages:
                if str(msg.topic) == f"{PREFIX}/state":
                    continue
                assert isinstance(msg.payload, bytes)
                self.seen.append((str(msg.topic), json.loads(msg.payload)))


@contextlib.asynccontextmanager
async def back_office(broker: Broker) -> AsyncIterator[BackOffice]:
    office = BackOffice()
    task = asyncio.create_task(office.run(broker))
    try:
        async with asyncio.timeout(10):
            await office.subscribed.wait()
        yield office
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def spawn(state: Path, broker: Broker, run: int, mode: str) -> subprocess.Popen[bytes]:
    # Starting a process takes milliseconds; its output is read in a thread (``line``).
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.publisher_crash_child",
            str(state),
            str(broker.port),
            str(run),
            mode,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def child(state: Path, broker: Broker, run: int, mode: str) -> subprocess.Popen[bytes]:
    proc = spawn(state, broker, run, mode)
    assert await line(proc) == "ready"
    return proc


async def line(proc: subprocess.Popen[bytes]) -> str:
    """The child's next line, read in a thread so that the back office keeps receiving."""
    assert proc.stdout is not None
    async with asyncio.timeout(LINE_TIMEOUT_S):
        raw = await asyncio.to_thread(proc.stdout.readline)
    assert raw.endswith(b"\n"), f"child exited early with {proc.wait()}"
    return raw.decode().rstrip("\n")


async def emit_and_kill(state: Path, broker: Broker, run: int, settled_before: int) -> list[str]:
    """Run an emitting child until it has settled ``settled_before`` jobs, SIGKILL it, and
    return every job it reported settled (a line cut short by the kill does not count)."""
    proc = await child(state, broker, run, "emit")
    assert proc.stdout is not None
    settled: list[str] = []
    try:
        while len(settled) < settled_before:
            settled.append((await line(proc)).removeprefix("S "))
        proc.send_signal(signal.SIGKILL)
        rest = await asyncio.to_thread(proc.stdout.read)
    finally:
        proc.kill()
        await asyncio.to_thread(proc.wait)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    settled += [s.removeprefix("S ") for s in rest.decode().split("\n")[:-1]]
    return settled


async def drain(state: Path, broker: Broker, office: BackOffice, run: int) -> None:
    """Publish what the killed child left; return once the back office has all of it."""
    proc = await child(state, broker, run, "drain")
    assert proc.stdout is not None
    try:
        assert await line(proc) == "drained"
    finally:
        await asyncio.to_thread(proc.wait, LINE_TIMEOUT_S)
        proc.stdout.close()
    assert proc.returncode == 0
    # The drain's sentinel went last on the same connection: once it is in, so is the rest.
    async with asyncio.timeout(30):
        while not any(t == f"{PREFIX}/sentinel" and b["run"] == run for t, b in office.seen):
            await asyncio.sleep(0.01)


@pytest.mark.timeout(240)
async def test_sigkill_loses_no_settled_job_and_leaves_no_hole_or_reordering(
    broker: Broker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    settled: list[str] = []
    async with back_office(broker) as office:
        for run, kill_after in enumerate(KILL_AFTER_SETTLED, 1):
            settled += await emit_and_kill(state, broker, run, kill_after)
            await drain(state, broker, office, run)

    results = {b["job"] for t, b in office.seen if t.endswith("/result")}
    assert set(settled) <= results, f"settled but never delivered: {set(settled) - results}"
    replays = 0
    for run in range(1, len(KILL_AFTER_SETTLED) + 1):
        for t in range(TOPICS_PER_RUN):
            firsts: list[int] = []
            for seen_topic, body in office.seen:
                if seen_topic != topic(run, t):
                    continue
                if body["n"] in firsts:
                    assert body["replayed"], (seen_topic, body)
                    replays += 1
                else:
                    firsts.append(body["n"])
            # Stored in order, published in order: what arrived is a prefix of what was
            # emitted (only the events of the last, uncommitted loop turn may be missing).
            assert firsts == list(range(len(firsts))), (run, t, firsts[:20])
            assert len(firsts) > 0
    assert len(settled) >= sum(KILL_AFTER_SETTLED)
    # Entries the broker acknowledged but the kill kept from being removed went again: at
    # most a removal batch and a window of them per kill, each marked (checked above).
    assert replays <= len(KILL_AFTER_SETTLED) * (50 + 20)
