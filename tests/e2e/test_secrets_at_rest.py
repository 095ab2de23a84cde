"""No secret or personal datum leaves a kit by the side: the real `gatewayd run` is given an
MQTT password, a job with a valid MPAN, an MPRN and install codes, and requests and a DCC
notice it refuses (an MPAN with a bad check digit, a job sent as a JSON string); then
everything it wrote is searched for them.

Searched: its log lines (at debug level, the most it says), a scrape of /metrics, every message
it published but the job's result (retained or not: the doc says install codes, MPANs and
MPRNs are never published), and every file of its state directory but the outbox and the job
journal, whose work is to keep jobs. Nor is the hub's serial device published. It runs under
umask 0022, as a kit started outside systemd may: everything it creates under its state
directory is still 0600, or 0700 for a directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from gatewayd.config.job import mpan_check_digit
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from tests.daemon_output import scrape_metrics, wait_line
from tests.integration.test_daemon_mqtt import KIT_TOML, PREFIX, SPEED, Subscriber, job_doc
from tests.mqtt_broker import Broker, free_port

PASSWORD = "Kx7Qm2Vw9Rt4Lp8Zs"
CORE = "192837465019"
MPAN = CORE + str(mpan_check_digit(CORE))
BAD_MPAN = CORE + str((mpan_check_digit(CORE) + 1) % 10)
MPRN = "8675309123"
INSTALL_CODES = (
    "5A3C9E1F7B2D4068A1C3E5F7092B4D6F",
    "D4E6F8091A2B3C4D5E6F708192A3B4C5",
    "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
)
PLANTED = {
    "the MQTT password": PASSWORD,
    "the MPAN": MPAN,
    "the MPAN with a bad check digit": BAD_MPAN,
    "the MPRN": MPRN,
    **{f"install code {i}": code for i, code in enumerate(INSTALL_CODES)},
}


def planted_job(job_id: str, mpan: str) -> dict[str, Any]:
    doc = job_doc(job_id)
    doc["mpan"], doc["mprn"] = mpan, MPRN
    for device, code in zip(doc["devices"], INSTALL_CODES, strict=True):
        device["install_code"] = code
    return doc


def leaks(text: str) -> list[str]:
    """What of ``PLANTED`` is in ``text``, also written with separators or in another case
    (a hex dump, an MPAN in groups of digits)."""
    squeezed = re.sub(r"[^0-9a-z]", "", text.lower())
    return [
        what
        for what, value in PLANTED.items()
        if value.lower() in text.lower() or value.lower() in squeezed
    ]


@dataclass
class Kit:
    proc: asyncio.subprocess.Process
    sub: Subscriber
    broker: Broker
    state: Path
    hub: Path
    metrics_port: int
    lines: list[str] = field(default_factory=list)

    async def read_output(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def wait_log(self, text: str, timeout: float = 30) -> str:
        return await wait_line(self.lines, text, timeout=timeout)

    async def scrape(self) -> str:
        _head, body = await scrape_metrics(self.metrics_port)
        return body

    async def retained(self) -> list[tuple[str, bytes]]:
        """Every retained message the broker holds: those a new subscription gets before a
        message published after subscribing."""
        found: list[tuple[str, bytes]] = []
        async with aiomqtt.Client(self.broker.host, self.broker.port, identifier="late") as c:
            await c.subscribe("#", qos=1)
            await c.publish("test/marker", b"end", qos=1)
            async with asyncio.timeout(10):
                async for msg in c.messages:
                    if str(msg.topic) == "test/marker":
                        return found
                    assert msg.retain, msg.topic
                    payload = msg.payload if isinstance(msg.payload, bytes) else b""
                    found.append((str(msg.topic), payload))
        raise AssertionError("the marker never came")


@contextlib.asynccontextmanager
async def running_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    sim = HubSimulator(load_scenario(shipped_scenario("quick")), tmp_path / "hub", speed=SPEED)
    await sim.start()
    password = tmp_path / "mqtt-password"
    password.write_text(PASSWORD + "\n")
    metrics_port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "kit.toml"
    config.write_text(
        KIT_TOML.format(
            speed=SPEED, port=tmp_path / "hub", host=broker.host, mqtt_port=broker.port, state=state
        ).replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{metrics_port}"')
        + f'username = "kit-1"\npassword_file = "{password}"\n[log]\nlevel = "debug"\n'
    )
    sub = Subscriber(broker.host, broker.port)
    tasks = [asyncio.create_task(sub.run())]
    env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
    # The child inherits the umask: 0022, as on a kit started by hand or by another init.
    umask = os.umask(0o022)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatewayd", "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        )  # fmt: skip
    finally:
        os.umask(umask)
    kit = Kit(proc, sub, broker, state, tmp_path / "hub", metrics_port)
    tasks.append(asyncio.create_task(kit.read_output()))
    try:
        await asyncio.wait_for(sub.connected.wait(), 10)
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "online")
        yield kit
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for t in tasks:
            t.cancel()
        await sim.stop()
        broker.stop()


async def test_nothing_the_kit_writes_holds_a_secret_and_its_state_is_private(
    tmp_path: Path,
) -> None:
    async with running_kit(tmp_path) as kit:
        sub = kit.sub
        bad = await sub.request(
            "start_job", {"transaction": "bad", "job": planted_job("J-BAD", BAD_MPAN)}
        )
        assert not bad["ok"] and bad["error"]["code"] == "invalid_request"
        # The key path and the kind of problem stay.
        assert "job.mpan" in bad["error"]["reason"], bad
        assert "check digit" in bad["error"]["reason"], bad
        # A job sent as a JSON string, not an object: refused without being repeated.
        stringly = await sub.request(
            "start_job", {"transaction": "str", "job": json.dumps(planted_job("J-S", MPAN))}
        )
        assert not stringly["ok"] and stringly["error"]["reason"].startswith("job: "), stringly
        await sub.client.publish(  # type: ignore[union-attr]
            f"{PREFIX}/dcc/notice",
            json.dumps(
                {"reference": "R-1", "received_at": "2026-01-01T00:00:00Z", "mpans": [BAD_MPAN]}
            ),
            qos=1,
        )
        refused = await kit.wait_log("DCC notice refused")
        assert "mpans[0]" in refused and "check digit" in refused, refused

        job = planted_job("J-OK", MPAN)
        good = await sub.request("start_job", {"transaction": "ok", "job": job})
        assert good["ok"], good
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-OK/result", 60)
        assert result.body["outcome"] == "commissioned"
        metrics = await kit.scrape()
        assert 'gatewayd_jobs_total{outcome="commissioned"} 1.0' in metrics
        kit.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(kit.proc.wait(), 60) == 0
        await kit.wait_log("gatewayd stopped")
        retained = await kit.retained()

    # The search would find nothing in what says nothing: each source is not empty.
    assert any("request refused" in line for line in kit.lines)
    assert any(topic == f"{PREFIX}/info" for topic, _ in retained)
    # What the daemon published: not the requests and the notice the test sent.
    sent = (f"{PREFIX}/request/", f"{PREFIX}/dcc/notice")
    published = [s for s in sub.seen if not s.topic.startswith(sent)]
    assert any(s.topic.endswith("/events") for s in published)
    state_files = sorted(p for p in kit.state.rglob("*") if p.is_file())
    assert kit.state / "mqtt-session" in state_files
    assert (kit.state / "outbox.sqlite3") in state_files

    # The hub's serial device stays off MQTT and out of the metrics too (on a kit, a
    # /dev/serial/by-id/... path with the adapter's serial number); the log may name it.
    port = str(kit.hub)
    found: dict[str, list[str]] = {}
    for n, line in enumerate(kit.lines):
        found[f"log line {n}"] = leaks(line)
    found["/metrics"] = leaks(metrics) + (["the hub's port"] if port in metrics else [])
    texts = [(f"retained {topic}", payload.decode("latin-1")) for topic, payload in retained]
    for n, s in enumerate(published):
        body = s.body.decode("latin-1") if isinstance(s.body, bytes) else json.dumps(s.body)
        texts.append((f"published {n} {s.topic}", body))
    for where, text in texts:
        if where.endswith(f"{PREFIX}/jobs/J-OK/result"):
            continue
        found[where] = leaks(text) + (["the hub's port"] if port in text else [])
    for path in state_files:
        if path.name.startswith("outbox.sqlite3") or path.parent.name == "jobs":
            continue
        found[f"file {path.relative_to(kit.state)}"] = leaks(path.read_bytes().decode("latin-1"))
    assert {where: what for where, what in found.items() if what} == {}

    # Private whatever the umask: the state directory (the daemon made it), the journal's
    # directory, the outbox with its log and index, the session counter.
    assert stat.S_IMODE(kit.state.stat().st_mode) == 0o700
    for path in kit.state.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
