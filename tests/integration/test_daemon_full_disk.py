"""The daemon on a state directory that fills up: nothing stops, nothing is lost while it runs,
and everything recovers by itself when space returns.

The state directory is a small tmpfs (so the disk is really full: ENOSPC from the kernel,
"database or disk is full" from SQLite), filled with a filler file and freed by deleting it.
Mounting needs root (or CAP_SYS_ADMIN): without it these tests are skipped, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_daemon_mqtt import PREFIX, Rig, Seen, job_doc, make_rig, retained

# Room for the daemon's files while it runs (the outbox's log grows by a few KiB a message
# until SQLite checkpoints it at 4 MiB); the filler takes the rest.
TMPFS_SIZE = "16m"
CHUNK = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted as the rig's state directory (``tmp_path/state``)."""
    state = tmp_path / "state"
    state.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount command: cannot make a small disk to fill")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(state)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {done.stderr.strip()}")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        # Big chunks first, then single bytes, so that not even a small write fits.
        for size in (CHUNK, 4096, 1):
            block = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    f.write(block)
    probe = directory / "probe"
    with pytest.raises(OSError) as refused, open(probe, "wb", buffering=0) as f:
        f.write(b"x" * 4096)
    probe.unlink(missing_ok=True)
    assert refused.value.errno == errno.ENOSPC
    return filler


async def outbox_drained(rig: Rig, timeout_s: float = 30) -> None:
    """Until the kit says nothing waits for the broker, on disk or in memory."""
    async with asyncio.timeout(timeout_s):
        while (await rig.sub.request("status", {"transaction": "drained?"}))["outbox"]["depth"]:
            await asyncio.sleep(0.1)


async def online_after(rig: Rig, since: int) -> Seen:
    return await rig.sub.wait_for(
        lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "online", 30, since=since
    )


@pytest.mark.timeout(120)
async def test_a_job_on_a_full_disk_gets_its_result_and_frees_its_hub(small_disk: Path) -> None:
    tmp_path = small_disk.parent
    async with make_rig(tmp_path, "wan_late", persistent_broker=True) as rig:
        sub = rig.sub
        assert (await sub.request("start_job", {"transaction": "a", "job": job_doc("J-1")}))["ok"]
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-1/events")
        filler = fill(small_disk)
        full_at = len(sub.seen)

        # The job goes on, its steps and its verdict are published (from memory), and so are
        # the hub's own events: no task died.
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-1/result", 60)
        assert result.body["outcome"] == "commissioned"
        events = [s.body for s in sub.seen[full_at:] if s.topic == f"{PREFIX}/jobs/J-1/events"]
        assert events and events[-1]["kind"] == "verdict"
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/hubs/hub1/events", since=full_at)
        status = await sub.request("status", {"transaction": "b"})
        assert status["jobs"] == [] and status["hubs"][0]["job_id"] is None

        # Space returns: what memory held reaches the outbox and the broker, once.
        filler.unlink()
        await outbox_drained(rig)
        results = [s.body for s in sub.seen if s.topic == f"{PREFIX}/jobs/J-1/result"]
        assert {r["outcome"] for r in results} == {"commissioned"}
        kept = await retained(rig.broker, f"{PREFIX}/jobs/J-1/result")
        assert kept["outcome"] == "commissioned"
        again = await sub.request("start_job", {"transaction": "c", "job": job_doc("J-1")})
        assert again["error"]["code"] == "job_exists"


@pytest.mark.timeout(120)
async def test_start_job_on_a_full_disk_is_refused_and_the_id_stays_usable(
    small_disk: Path,
) -> None:
    tmp_path = small_disk.parent
    async with make_rig(tmp_path, "quick") as rig:
        sub = rig.sub
        filler = fill(small_disk)
        refused = await sub.request("start_job", {"transaction": "a", "job": job_doc("J-2")})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "storage_error", refused
        assert str(small_disk) in refused["error"]["reason"]
        assert "No space left on device" in refused["error"]["reason"]
        filler.unlink()
        resp = await sub.request("start_job", {"transaction": "b", "job": job_doc("J-2")})
        assert resp["ok"] is True, resp
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-2/result", 60)
        assert result.body["outcome"] == "commissioned"


@pytest.mark.timeout(120)
async def test_a_full_disk_never_stops_the_kit_reconnecting(small_disk: Path) -> None:
    tmp_path = small_disk.parent
    async with make_rig(tmp_path, "quick") as rig:
        first = await online_after(rig, 0)
        filler = fill(small_disk)
        # A connection needs a new session number, which the disk refuses.
        n = len(rig.sub.seen)
        rig.broker.stop()
        rig.broker.start()
        again = await online_after(rig, n)
        assert again.body["session"] > first.body["session"]
        first = again
        filler.unlink()
        n = len(rig.sub.seen)
        rig.broker.stop()
        rig.broker.start()
        assert (await online_after(rig, n)).body["session"] > first.body["session"]
        assert int((small_disk / "mqtt-session").read_text()) > first.body["session"]
