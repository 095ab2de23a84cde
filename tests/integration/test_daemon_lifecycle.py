"""`gatewayd run` as systemd runs it: its own process, a notify socket, a watchdog, a real
mosquitto and a simulated hub. Checks READY/STATUS/WATCHDOG/RELOADING/STOPPING, a live
scrape of /metrics (and `promtool check metrics` on it), SIGHUP with a good and a bad
config, key=value log lines on stdout, and a SIGTERM mid-job that loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from tests.daemon_output import scrape_metrics, wait_line
from tests.integration.test_daemon_mqtt import KIT_TOML, PREFIX, SPEED, Subscriber, job_doc
from tests.mqtt_broker import Broker, free_port
from tests.ops.tools import promtool_path

LINE = re.compile(r"^ts=\S+ level=(debug|info|warning|error|critical) logger=\S+ msg=")


@dataclass
class Notifications:
    """What systemd would have received on its notify socket."""

    sock: socket.socket
    seen: list[dict[str, str]] = field(default_factory=list)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            lines = data.decode(errors="replace").split("\n")
            self.seen.append(dict(x.split("=", 1) for x in lines if "=" in x))

    async def wait_for(self, key: str, since: int = 0, timeout: float = 20) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.seen[since:]:
                    if key in msg:
                        return msg
                await asyncio.sleep(0.02)

    def statuses(self, since: int = 0) -> list[str]:
        return [m["STATUS"] for m in self.seen[since:] if "STATUS" in m]


@dataclass
class Kit:
    proc: asyncio.subprocess.Process
    notes: Notifications
    sub: Subscriber
    config: Path
    metrics_port: int
    stdout: list[str] = field(default_factory=list)

    async def read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.stdout.append(raw.decode().rstrip("\n"))

    async def wait_log(self, text: str, since: int = 0, timeout: float = 20) -> str:
        return await wait_line(self.stdout, text, since, timeout)

    async def scrape(self) -> str:
        head, body = await scrape_metrics(self.metrics_port)
        assert "Content-Type: text/plain; version=0.0.4" in head
        return body


def kit_toml(tmp_path: Path, broker: Broker, metrics_port: int, extra: str = "") -> str:
    text = KIT_TOML.format(
        speed=SPEED,
        port=tmp_path / "hub",
        host=broker.host,
        mqtt_port=broker.port,
        state=tmp_path / "state",
    )
    return text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{metrics_port}"') + extra


@contextlib.asynccontextmanager
async def running_kit(tmp_path: Path, scenario: str) -> AsyncIterator[Kit]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    sim = HubSimulator(load_scenario(shipped_scenario(scenario)), tmp_path / "hub", speed=SPEED)
    await sim.start()
    metrics_port = free_port()
    config = tmp_path / "kit.toml"
    config.write_text(kit_toml(tmp_path, broker, metrics_port))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    notes = Notifications(sock)
    sub = Subscriber(broker.host, broker.port)
    tasks = [asyncio.create_task(notes.run()), asyncio.create_task(sub.run())]
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="200000")
    env.pop("JOURNAL_STREAM", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    kit = Kit(proc, notes, sub, config, metrics_port)
    tasks.append(asyncio.create_task(kit.read_stdout()))
    try:
        await asyncio.wait_for(sub.connected.wait(), 10)
        yield kit
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for t in tasks:
            t.cancel()
        sock.close()
        await sim.stop()
        broker.stop()


def value_of(body: str, sample: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_service_lifecycle_notify_metrics_reload_and_stop(tmp_path: Path) -> None:
    async with running_kit(tmp_path, "gsme_never_single_band") as kit:
        ready = await kit.notes.wait_for("READY")
        assert ready["STATUS"].startswith("idle")
        # The watchdog is kicked every 100 ms (half of WATCHDOG_USEC) from the loop.
        async with asyncio.timeout(10):
            while sum("WATCHDOG" in m for m in kit.notes.seen) < 3:
                await asyncio.sleep(0.05)
        await kit.sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "online"
        )

        # A job to its verdict: STATUS follows it, the metrics count it.
        mark = len(kit.notes.seen)
        resp = await kit.sub.request("start_job", {"transaction": "1", "job": job_doc("J-1")})
        assert resp["ok"], resp
        result = await kit.sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-1/result", 30)
        assert result.body["abort"]["code"] == "UNABLE_TO_ESTABLISH_HAN"
        async with asyncio.timeout(10):
            while not any(s.startswith("idle") for s in kit.notes.statuses(mark + 1)):
                await asyncio.sleep(0.05)
        assert any("running J-1 on hub1" in s for s in kit.notes.statuses(mark))
        body = await kit.scrape()
        assert value_of(body, 'gatewayd_jobs_total{outcome="aborted"}') == 1
        assert value_of(body, 'gatewayd_aborts_total{reason="UNABLE_TO_ESTABLISH_HAN"}') == 1
        assert value_of(body, 'gatewayd_probe_attempts_total{link="wan",result="established"}') == 1
        assert value_of(body, 'gatewayd_serial_connected{hub="hub1"}') == 1
        assert value_of(body, "gatewayd_mqtt_connected") == 1
        assert (value_of(body, 'gatewayd_serial_bytes_total{direction="rx",hub="hub1"}') or 0) > 0
        assert value_of(body, 'gatewayd_hub_wan_rssi_dbm{hub="hub1"}') is not None
        assert "/dev/" not in body and str(tmp_path) not in body
        check = await asyncio.create_subprocess_exec(
            promtool_path(), "check", "metrics",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        said, _ = await asyncio.wait_for(check.communicate(body.encode()), 30)
        assert check.returncode == 0, said.decode()

        # SIGHUP with a changed live key: RELOADING, then READY; the new value is logged.
        digest = kit.sub.on(f"{PREFIX}/info")[-1]["config_digest"]
        kit.config.write_text(
            kit.config.read_text().replace("deadline_s = 400", "deadline_s = 500")
        )
        mark, log_mark = len(kit.notes.seen), len(kit.stdout)
        kit.proc.send_signal(signal.SIGHUP)
        await kit.notes.wait_for("RELOADING", since=mark)
        await kit.notes.wait_for("READY", since=mark)
        line = await kit.wait_log("config reloaded", since=log_mark)
        assert "changed=han" in line
        info = await kit.sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/info" and s.body["config_digest"] != digest
        )
        new_digest = info.body["config_digest"]

        # SIGHUP with a broken config: refused, named, and the running config stays.
        kit.config.write_text(kit.config.read_text() + "\n[wan]\ndeadline_s = -1\n")
        mark, log_mark = len(kit.notes.seen), len(kit.stdout)
        kit.proc.send_signal(signal.SIGHUP)
        await kit.notes.wait_for("READY", since=mark)
        line = await kit.wait_log("config reload refused", since=log_mark)
        assert "level=error" in line and str(kit.config) in line
        status = await kit.sub.request("status", {"transaction": "s"})
        assert status["ok"]
        assert kit.sub.on(f"{PREFIX}/info")[-1]["config_digest"] == new_digest

        # SIGTERM mid-job: STOPPING, the job is recorded as cancelled, offline, exit 0.
        resp = await kit.sub.request("start_job", {"transaction": "2", "job": job_doc("J-2")})
        assert resp["ok"], resp
        await kit.sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-2/events", 10)
        mark = len(kit.notes.seen)
        kit.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(kit.proc.wait(), 30) == 0
        stopping = await kit.notes.wait_for("STOPPING", since=mark)
        assert stopping["STATUS"].startswith("stopping")
        cancelled = await kit.sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-2/result")
        assert cancelled.body["outcome"] == "cancelled"
        assert cancelled.body["cancellation"]["by"] == "kit_shutdown"
        await kit.sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "offline"
        )
        await kit.wait_log("gatewayd stopped")  # the last line on the pipe
        assert kit.stdout, "the daemon logs to stdout"
        for line in kit.stdout:
            assert LINE.match(line), line


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = Broker(tmp_path / "broker")
        config = tmp_path / "kit.toml"
        config.write_text(kit_toml(tmp_path, broker, port))
        proc = subprocess.run(
            [sys.executable, "-m", "gatewayd", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
async def test_a_stop_signal_when_idle_exits_zero(tmp_path: Path, signal_name: str) -> None:
    async with running_kit(tmp_path, "quick") as kit:
        await kit.notes.wait_for("READY")
        kit.proc.send_signal(getattr(signal, signal_name))
        try:
            code = await asyncio.wait_for(kit.proc.wait(), 30)
        except TimeoutError:
            pytest.fail("no exit 30 s after the signal; it logged:\n" + "\n".join(kit.stdout))
        assert code == 0, "\n".join(kit.stdout)
        await kit.notes.wait_for("STOPPING")
