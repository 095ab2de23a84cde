"""The daemon against a real mosquitto and a simulated hub: jobs in, events and verdicts out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gatewayd.config.kit import KitConfig, parse_kit_config
from gatewayd.daemon.service import Daemon
from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import load_scenario, shipped_scenario
from tests.mqtt_broker import Broker
from tests.waiting import wait_until

SPEED = 50
ROOT = Path(__file__).resolve().parents[2]
PREFIX = "gatewayd/kit-1"


@dataclass
class Seen:
    topic: str
    body: Any
    retain: bool


@dataclass
class Subscriber:
    """A back office: subscribed to everything of the kit, reconnecting at once."""

    host: str
    port: int
    seen: list[Seen] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    client: aiomqtt.Client | None = None
    # A session the broker keeps across reconnects and (when persistent) its own restarts:
    # what it accepted from the kit and had not delivered yet reaches the back office after.
    keep_session: bool = False

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier="backoffice",
                    clean_session=not self.keep_session,
                ) as c:
                    await c.subscribe(f"{PREFIX}/#", qos=1)
                    self.client = c
                    self.connected.set()
                    async for msg in c.messages:
                        raw = bytes(msg.payload) if isinstance(msg.payload, bytes) else b""
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = raw
                        self.seen.append(Seen(str(msg.topic), body, bool(msg.retain)))
            except aiomqtt.MqttError:
                self.connected.clear()
                self.client = None
                await asyncio.sleep(0.02)

    async def wait_for(
        self, pred: Callable[[Seen], bool], timeout: float = 30, *, since: int = 0
    ) -> Seen:
        """The first message from index ``since`` on that ``pred`` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                for s in self.seen[since:]:
                    if pred(s):
                        return s
                await asyncio.sleep(0.02)

    async def request(self, command: str, body: Any, timeout: float = 10) -> dict[str, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        start = len(self.seen)
        await self.connected.wait()
        assert self.client is not None
        await self.client.publish(f"{PREFIX}/request/{command}", raw, qos=1)
        async with asyncio.timeout(timeout):
            while True:
                for s in self.seen[start:]:
                    if s.topic == f"{PREFIX}/response/{command}":
                        assert isinstance(s.body, dict)
                        return s.body
                await asyncio.sleep(0.02)

    def on(self, topic: str) -> list[Any]:
        return [s.body for s in self.seen if s.topic == topic]


@dataclass
class Rig:
    broker: Broker
    sub: Subscriber
    daemon: Daemon
    sim: HubSimulator


def job_doc(job_id: str) -> dict[str, Any]:
    doc = tomllib.loads((ROOT / "examples" / "jobs" / "dual-fuel.toml").read_text())
    doc["job_id"] = job_id
    return doc


@contextlib.asynccontextmanager
async def make_rig(
    tmp_path: Path, scenario: str = "quick", *, persistent_broker: bool = False
) -> AsyncIterator[Rig]:
    broker = Broker(tmp_path / "broker", persistent=persistent_broker)
    broker.start()
    sim = HubSimulator(load_scenario(shipped_scenario(scenario)), tmp_path / "hub", speed=SPEED)
    await sim.start()
    try:
        async with daemon_online(rig_kit(tmp_path, broker), broker) as (sub, daemon):
            yield Rig(broker, sub, daemon, sim)
    finally:
        await sim.stop()
        broker.stop()


def rig_kit(tmp_path: Path, broker: Broker) -> KitConfig:
    """One hub on the pty at ``tmp_path/hub``, the broker, state in ``tmp_path/state``."""
    return parse_kit_config(
        {
            "time_scale": SPEED,
            "hub": {"name": "hub1", "port": str(tmp_path / "hub")},
            "wan": {"deadline_s": 300},
            "han": {"deadline_s": 400, "join_window_s": 40, "join_attempts": 3},
            "poll": {"first_interval_s": 5, "max_interval_s": 20, "attempt_timeout_s": 200},
            "mqtt": {
                "kit_id": "kit-1",
                "host": broker.host,
                "port": broker.port,
                "state_dir": str(tmp_path / "state"),
                # Slower than the test's subscriber, so it is back first after an outage.
                "reconnect_first_s": 0.5,
                "reconnect_max_s": 1.0,
            },
            "metrics": {"listen": "127.0.0.1:0"},
        },
        source="test kit",
    )


@contextlib.asynccontextmanager
async def daemon_online(kit: KitConfig, broker: Broker) -> AsyncIterator[tuple[Subscriber, Daemon]]:
    """The daemon in this process and a back office subscribed to it, once it is online;
    stopped cleanly afterwards (the broker and simulators are the caller's)."""
    sub = Subscriber(broker.host, broker.port)
    sub_task = asyncio.create_task(sub.run())
    daemon = Daemon(kit, config_bytes=b"test")
    run_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(sub.connected.wait(), 10)
        run_task = asyncio.create_task(daemon.run())
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "online")
        yield sub, daemon
    finally:
        daemon.request_stop()
        if run_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(run_task, 30)
        sub_task.cancel()


async def retained(broker: Broker, topic: str) -> Any:
    async with aiomqtt.Client(broker.host, broker.port, identifier="late") as c:
        await c.subscribe(topic, qos=1)
        async with asyncio.timeout(5):
            async for msg in c.messages:
                assert msg.retain
                return json.loads(bytes(msg.payload))  # type: ignore[arg-type]
    raise AssertionError(f"nothing retained on {topic}")


def assert_no_gaps(events: list[dict[str, Any]]) -> None:
    """Per session, seq runs 1..n with nothing missing; repeats only with the same event_id."""
    by_session: dict[int, dict[int, str]] = {}
    for e in events:
        seqs = by_session.setdefault(e["session"], {})
        if e["seq"] in seqs:
            assert seqs[e["seq"]] == e["event_id"], "a seq reused for a different event"
        seqs[e["seq"]] = e["event_id"]
    for session, seqs in by_session.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"gap in session {session}"
        # In order: first arrivals come in seq order (dicts keep insertion order).
        assert list(seqs) == sorted(seqs), f"out of order in session {session}"


def assert_no_port_paths(sub: Subscriber, tmp_path: Path) -> None:
    """Nothing the kit published names a path under ``tmp_path``, where the hubs' ports are."""
    published = [json.dumps(s.body) for s in sub.seen if "/request/" not in s.topic]
    assert [p for p in published if str(tmp_path) in p] == []


async def test_full_job_is_observed_by_a_subscriber(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        sub = rig.sub
        info = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/info")
        assert info.body["hubs"][0]["name"] == "hub1"
        avail = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/hubs/hub1/availability")
        assert avail.body["state"] == "online"
        resp = await sub.request("start_job", {"transaction": "t-1", "job": job_doc("J-1")})
        assert resp["ok"] is True and resp["transaction"] == "t-1" and resp["job_id"] == "J-1"
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-1/result")
        assert result.body["outcome"] == "commissioned"
        # A back office that subscribes later still gets the verdict: it is retained.
        late = await retained(rig.broker, f"{PREFIX}/jobs/J-1/result")
        assert late["outcome"] == "commissioned" and late["job_id"] == "J-1"
        events = sub.on(f"{PREFIX}/jobs/J-1/events")
        assert events and events[-1]["kind"] == "verdict"
        assert_no_gaps(events)
        assert all(e["replayed"] is False for e in events)
        assert sub.on(f"{PREFIX}/hubs/hub1/events")  # the hub's own events are published too
        status = await sub.request("status", {"transaction": "t-2"})
        assert status["ok"] and status["outbox"]["depth"] == 0 and status["jobs"] == []


async def test_broker_stopped_mid_job_loses_nothing(tmp_path: Path) -> None:
    async with make_rig(tmp_path, "wan_late") as rig:
        sub = rig.sub
        resp = await sub.request("start_job", {"transaction": "t", "job": job_doc("J-2")})
        assert resp["ok"], resp
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-2/events")
        rig.broker.stop()
        # The job goes on: its events wait in the outbox.
        async with asyncio.timeout(10):
            while rig.daemon.queued() == 0:
                await asyncio.sleep(0.02)
        rig.broker.start()
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-2/result", 60)
        assert result.body["outcome"] == "commissioned"
        events = sub.on(f"{PREFIX}/jobs/J-2/events")
        assert_no_gaps(events)
        assert any(e["replayed"] for e in events)  # some were published late
        assert events[-1]["kind"] == "verdict"


async def test_bad_requests_get_error_responses_and_the_daemon_keeps_running(
    tmp_path: Path,
) -> None:
    async with make_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        bad_hub = {"transaction": "a", "hub": "nope", "job": job_doc("J-3")}
        bad_mpan = {"transaction": "b", "job": {**job_doc("J-4"), "mpan": "1"}}
        cases: list[tuple[str, Any, str]] = [
            ("start_job", b"{not json", "invalid_json"),
            ("start_job", {"job": job_doc("J-x")}, "invalid_request"),
            ("start_job", bad_hub, "unknown_hub"),
            ("start_job", bad_mpan, "invalid_request"),
            ("start_job", b"{" + b" " * 40_000 + b"}", "too_large"),
            ("cancel_job", {"transaction": "c", "job_id": "ghost"}, "unknown_job"),
            ("launch", {"transaction": "d"}, "unknown_command"),
        ]  # fmt: skip
        for command, body, code in cases:
            resp = await sub.request(command, body)
            assert resp["ok"] is False and resp["error"]["code"] == code, (command, resp)
            assert resp["error"]["reason"]
        ok = await sub.request("start_job", {"transaction": "e", "job": job_doc("J-5")})
        assert ok["ok"] is True
        busy = await sub.request("start_job", {"transaction": "f", "job": job_doc("J-6")})
        assert busy["ok"] is False and busy["error"]["code"] == "hub_busy"
        again = await sub.request("cancel_job", {"transaction": "g", "job_id": "J-5"})
        assert again["ok"] is True
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-5/result")
        assert result.body["outcome"] == "cancelled"
        assert result.body["cancellation"]["by"] == "back_office"
        status = await sub.request("status", {"transaction": "h"})
        assert status["ok"] is True


async def test_dcc_notice_topic_aborts_the_running_job(tmp_path: Path) -> None:
    async with make_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        assert (await sub.request("start_job", {"transaction": "t", "job": job_doc("J-7")}))["ok"]
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-7/events")
        assert sub.client is not None
        notice = {
            "reference": "DCC-123",
            "received_at": "2026-11-23T10:00:00Z",
            "not_before": "2026-12-01T08:00:00Z",
            "job_ids": ["J-7"],
        }
        await sub.client.publish(f"{PREFIX}/dcc/notice", json.dumps(notice).encode(), qos=1)
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-7/result")
        assert result.body["abort"]["code"] == "UNABLE_TO_ESTABLISH_WAN"
        abort = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/aborts")
        assert abort.body["job_id"] == "J-7" and abort.body["code"] == "UNABLE_TO_ESTABLISH_WAN"


@pytest.fixture(autouse=True)
def _quiet_paho(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")


KIT_TOML = """
time_scale = {speed}
[hub]
name = "hub1"
port = "{port}"
[han]
deadline_s = 400
join_window_s = 40
[poll]
first_interval_s = 5
max_interval_s = 20
attempt_timeout_s = 200
[metrics]
listen = "127.0.0.1:0"  # a free port: tests may run beside each other and a real kit
# [mqtt] comes last: tests append keys to it.
[mqtt]
kit_id = "kit-1"
host = "{host}"
port = {mqtt_port}
state_dir = "{state}"
reconnect_first_s = 0.5
reconnect_max_s = 1.0
"""


@dataclass
class ProcessRig:
    """The daemon as its own process (so it can be SIGKILLed), a broker, a hub, a back office."""

    broker: Broker
    sub: Subscriber
    kit: Path
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start_daemon(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatewayd", "run", "--config", str(self.kit),
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    async def online(self) -> Seen:
        return await self.sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "online"
        )


@contextlib.asynccontextmanager
async def process_rig(
    tmp_path: Path, scenario: str, *, extra_mqtt: str = "", persistent: bool = False
) -> AsyncIterator[ProcessRig]:
    """``persistent``: the broker keeps what it accepted across its own restarts, and the back
    office's session with it, as a production broker does."""
    broker = Broker(tmp_path / "broker", persistent=persistent)
    broker.start()
    sim = HubSimulator(load_scenario(shipped_scenario(scenario)), tmp_path / "hub", speed=SPEED)
    await sim.start()
    kit = tmp_path / "kit.toml"
    kit.write_text(
        KIT_TOML.format(
            speed=SPEED,
            port=tmp_path / "hub",
            host=broker.host,
            mqtt_port=broker.port,
            state=tmp_path / "state",
        )
        + extra_mqtt
    )
    sub = Subscriber(broker.host, broker.port, keep_session=persistent)
    sub_task = asyncio.create_task(sub.run())
    rig = ProcessRig(broker, sub, kit)
    try:
        await asyncio.wait_for(sub.connected.wait(), 10)
        yield rig
    finally:
        for proc in rig.procs:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    # A daemon that ignores SIGTERM (a loop that never yields) must not outlive
                    # the test and load the machine for the ones after it.
                    proc.kill()
                    await proc.wait()
        sub_task.cancel()
        await sim.stop()
        broker.stop()


async def test_daemon_killed_with_a_queued_result_delivers_it_after_restart(
    tmp_path: Path,
) -> None:
    # A persistent broker: stopping it must not lose what it acknowledged to the kit (with
    # several messages in flight, some always are when it stops), or a gap would be its own.
    async with process_rig(tmp_path, "quick", persistent=True) as rig:
        sub, broker = rig.sub, rig.broker
        daemon = await rig.start_daemon()
        await rig.online()
        resp = await sub.request("start_job", {"transaction": "t", "job": job_doc("J-K")})
        assert resp["ok"], resp
        broker.stop()  # the whole job now runs with the broker away
        # The job journal lets go of a job once its result is in the outbox, on disk.
        await wait_until(lambda: not (tmp_path / "state" / "jobs" / "J-K.json").exists(), 30)
        daemon.kill()  # SIGKILL: no clean stop, no flush
        await daemon.wait()
        seen_before = len(sub.on(f"{PREFIX}/jobs/J-K/result"))
        assert seen_before == 0
        broker.start()
        await asyncio.wait_for(sub.connected.wait(), 10)
        await rig.start_daemon()
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-K/result", 30)
        assert result.body["outcome"] == "commissioned"
        events = sub.on(f"{PREFIX}/jobs/J-K/events")
        assert_no_gaps(events)
        assert events[-1]["kind"] == "verdict"
        assert any(e["replayed"] for e in events)
        # SIGTERM: a clean stop that says offline itself and exits 0.
        rig.procs[-1].terminate()
        assert await asyncio.wait_for(rig.procs[-1].wait(), 30) == 0
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "offline")


async def test_many_hubs_run_jobs_concurrently_and_a_dead_hub_stalls_none(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    sims = [
        HubSimulator(load_scenario(shipped_scenario(name)), tmp_path / f"hub-{n}", speed=SPEED)
        for n, name in (("a", "quick"), ("b", "gsme_second_window"))
    ]
    for sim in sims:
        await sim.start()
    kit = parse_kit_config(
        {
            "time_scale": SPEED,
            "hubs": [
                {"name": "hub-a", "port": str(tmp_path / "hub-a")},
                {"name": "hub-b", "port": str(tmp_path / "hub-b")},
                {"name": "hub-dead", "port": str(tmp_path / "no-such-port")},
            ],
            "han": {"deadline_s": 400, "join_window_s": 40},
            "poll": {"first_interval_s": 5, "max_interval_s": 20, "attempt_timeout_s": 200},
            "mqtt": {
                "kit_id": "kit-1",
                "host": broker.host,
                "port": broker.port,
                "state_dir": str(tmp_path / "state"),
            },
            "metrics": {"listen": "127.0.0.1:0"},
        }
    )
    try:
        async with daemon_online(kit, broker) as (sub, _daemon):
            dead = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/hubs/hub-dead/availability")
            assert dead.body["state"] == "offline" and dead.body["reason"]
            no_hub = await sub.request("start_job", {"transaction": "x", "job": job_doc("J-0")})
            assert (
                no_hub["error"]["code"] == "unknown_hub"
            )  # several hubs: the request must name one
            for hub, job_id in (("hub-a", "J-A"), ("hub-b", "J-B"), ("hub-dead", "J-D")):
                resp = await sub.request(
                    "start_job", {"transaction": job_id, "hub": hub, "job": job_doc(job_id)}
                )
                assert resp["ok"], resp
            results = {}
            for job_id in ("J-A", "J-B", "J-D"):
                seen = await sub.wait_for(
                    lambda s, j=job_id: s.topic == f"{PREFIX}/jobs/{j}/result"
                )
                results[job_id] = seen.body["outcome"]
            assert results == {"J-A": "commissioned", "J-B": "commissioned", "J-D": "failed"}
            # The dead hub's availability, its job's steps and failure name its port by the
            # hub's name: on a kit the path holds the USB adapter's serial number.
            assert_no_port_paths(sub, tmp_path)
    finally:
        for sim in sims:
            await sim.stop()
        broker.stop()


async def test_hub_availability_follows_the_serial_link(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        topic = f"{PREFIX}/hubs/hub1/availability"
        await rig.sub.wait_for(lambda s: s.topic == topic and s.body["state"] == "online")
        rig.sim.pull_cable(1.0)
        off = await rig.sub.wait_for(lambda s: s.topic == topic and s.body["state"] == "offline")
        assert off.body["reason"]
        n = len(rig.sub.seen)
        await rig.sub.wait_for(lambda s: s.topic == topic and s.body["state"] == "online", since=n)
        kinds = [e["event"]["kind"] for e in rig.sub.on(f"{PREFIX}/hubs/hub1/events")]
        assert "link_lost" in kinds and "link_up" in kinds
        assert "<port of hub hub1>" in off.body["reason"]
        assert_no_port_paths(rig.sub, tmp_path)


async def test_rebirth_republishes_state_info_availability_and_results(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        sub = rig.sub
        assert (await sub.request("start_job", {"transaction": "t", "job": job_doc("J-R")}))["ok"]
        await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-R/result")
        n = len(sub.seen)
        resp = await sub.request("rebirth", {"transaction": "r"})
        assert resp["ok"] is True and resp["session"] == 1
        for topic in ("state", "info", "hubs/hub1/availability", "jobs/J-R/result"):
            await sub.wait_for(lambda s, t=topic: s.topic == f"{PREFIX}/{t}", since=n)


async def test_last_will_of_a_killed_daemon_carries_its_session(tmp_path: Path) -> None:
    async with process_rig(tmp_path, "quick", extra_mqtt="keepalive_s = 5\n") as rig:
        proc = await rig.start_daemon()
        online = await rig.online()
        proc.kill()
        await proc.wait()
        offline = await rig.sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/state" and s.body["state"] == "offline", 20
        )
        assert offline.body["session"] == online.body["session"]


async def test_daemon_killed_mid_job_publishes_a_failed_result_after_restart(
    tmp_path: Path,
) -> None:
    async with process_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        first = await rig.start_daemon()
        await rig.online()
        assert (await sub.request("start_job", {"transaction": "t", "job": job_doc("J-M")}))["ok"]
        await sub.wait_for(
            lambda s: s.topic == f"{PREFIX}/jobs/J-M/events" and s.body["stage"] == "wan"
        )
        first.kill()  # mid-WAN-probe: the job cannot finish in this process
        await first.wait()
        await rig.start_daemon()
        result = await sub.wait_for(lambda s: s.topic == f"{PREFIX}/jobs/J-M/result", 30)
        assert result.body["outcome"] == "failed"
        assert "stopped while this job ran" in result.body["failure"]["reason"]
        # The same job id is not taken again by this kit: its verdict is final.
        again = await sub.request("start_job", {"transaction": "u", "job": job_doc("J-M")})
        assert again["ok"] is False and again["error"]["code"] == "job_exists"
