"""Hub event to MQTT: gatewayd against the minimal forwarder, on the same hubs and broker.

For each hub count, each repetition runs both sides (the order alternating between
repetitions) against a fresh set of ptys from ``bench.hub_load`` and one mosquitto on a
free loopback port. A subscriber in this process stamps every event on arrival: the
latency is its arrival minus the send time the event carries (each hub's first
``WARMUP_EVENTS`` are counted but not timed). Per run it reports the
events sent and delivered (each counted once, duplicates apart), p50 and p99, the CPU the
side used per second of load (user + system, from /proc, from the start of sending until
the last event arrived) and its resident memory at the end of sending.

Run: python -m bench.hub_latency --hubs 1 64 256 1024 --seconds 20 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench.hub_load import latency_us, stamp_us
from tests.mqtt_broker import Broker

SIDES = ("gatewayd", "floor")
READY_TIMEOUT_S = 300.0  # 1,024 ports and their births on a busy 2-core machine
DELIVERY_TIMEOUT_S = 60.0
# Each hub's first events are delivered and counted, but their latency is not: they
# include the side's first-use costs (a connection's first publish, a topic's first seq).
WARMUP_EVENTS = 2

KIT_TOML = """\
[metrics]
listen = "127.0.0.1:0"

[mqtt]
kit_id = "{kit}"
host = "{host}"
port = {port}
state_dir = "{state_dir}"
"""


@dataclass
class RunFigures:
    side: str
    hubs: int
    sent: int
    delivered: int
    duplicates: int
    p50_ms: float
    p99_ms: float
    cpu_pct: float
    rss_mb: float

    @property
    def lost(self) -> int:
        return self.sent - self.delivered


@dataclass
class _Window:
    base: str
    latencies_us: list[int] = field(default_factory=list)
    seen: set[tuple[str, int]] = field(default_factory=set)
    duplicates: int = 0
    online: set[str] = field(default_factory=set)


class Watch:
    """The subscriber: every kit's hub events and availability, stamped on arrival."""

    def __init__(self, host: str, port: int) -> None:
        self._lock = threading.Lock()
        self._window: _Window | None = None
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-watch")
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, port)
        self._client.subscribe([("+/+/hubs/+/events", 1), ("+/+/hubs/+/availability", 1)])
        self._client.loop_start()
        if not self._subscribed.wait(30):
            raise RuntimeError("the bench's subscriber got no SUBACK from the broker")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def begin(self, base: str) -> None:
        with self._lock:
            self._window = _Window(base)

    def online(self) -> int:
        with self._lock:
            return len(self._window.online) if self._window else 0

    def delivered(self) -> int:
        with self._lock:
            return len(self._window.seen) if self._window else 0

    def end(self) -> _Window:
        with self._lock:
            window, self._window = self._window, None
        assert window is not None
        return window

    def _on_message(self, _client: Any, _userdata: Any, msg: paho.MQTTMessage) -> None:
        now = stamp_us()
        with self._lock:
            w = self._window
            if w is None or not msg.topic.startswith(w.base + "/"):
                return
            hub = msg.topic.split("/")[-2]
            try:
                doc = json.loads(msg.payload)
            except ValueError:
                return
            if msg.topic.endswith("/availability"):
                if doc.get("state") == "online":
                    w.online.add(hub)
                return
            event = doc.get("event") or {}
            number, sent = event.get("seconds_in_state"), event.get("last_dcc_contact_s")
            if not isinstance(number, int) or not isinstance(sent, int):
                return  # a link event, not one of the load's
            if (hub, number) in w.seen:
                w.duplicates += 1
                return
            w.seen.add((hub, number))
            if number > WARMUP_EVENTS:
                w.latencies_us.append(latency_us(sent, now))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: Sequence[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def _wait(condition: Any, timeout: float, what: str, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process ended with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.05)


@contextlib.contextmanager
def _process(args: list[str], **kw: Any) -> Iterator[subprocess.Popen[Any]]:
    proc = subprocess.Popen(args, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_once(
    side: str, hubs: int, seconds: float, broker: Broker, watch: Watch, workdir: Path, index: int
) -> RunFigures:
    kit = f"run{index}"
    py = sys.executable
    gen_args = [py, "-m", "bench.hub_load", "--hubs", str(hubs)]
    with _process(gen_args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as gen:
        assert gen.stdin is not None and gen.stdout is not None
        ports: list[str] = json.loads(gen.stdout.readline())["ports"]
        log = (workdir / f"{kit}-{side}.log").open("wb")
        if side == "gatewayd":
            state = workdir / f"{kit}-state"
            config = workdir / f"{kit}.toml"
            text = KIT_TOML.format(kit=kit, host=broker.host, port=broker.port, state_dir=state)
            text += "".join(
                f'\n[[hubs]]\nname = "hub{i}"\nport = "{p}"\n' for i, p in enumerate(ports)
            )
            config.write_text(text)
            watch.begin(f"gatewayd/{kit}")
            args = [py, "-m", "gatewayd", "run", "--config", str(config)]
            stdout: Any = log
        else:
            listing = workdir / f"{kit}-ports.json"
            listing.write_text(json.dumps(ports))
            watch.begin(f"floor/{kit}")
            args = [py, "-m", "bench.forwarder", "--host", broker.host, "--port",
                    str(broker.port), "--kit", kit, str(listing)]  # fmt: skip
            stdout = subprocess.PIPE
        with log, _process(args, stdout=stdout, stderr=log, text=True) as proc:
            if side == "gatewayd":
                _wait(lambda: watch.online() >= hubs, READY_TIMEOUT_S, "gatewayd ready", proc)
            else:
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"the forwarder did not start (see {log.name})")
            cpu_start = cpu_seconds(proc.pid)
            gen.stdin.write(json.dumps({"go": seconds}) + "\n")
            gen.stdin.flush()
            sent = sum(json.loads(gen.stdout.readline())["sent"].values())
            rss = rss_mb(proc.pid)
            with contextlib.suppress(RuntimeError):
                _wait(lambda: watch.delivered() >= sent, DELIVERY_TIMEOUT_S, "delivery", proc)
            cpu = cpu_seconds(proc.pid) - cpu_start
            window = watch.end()
        gen.stdin.close()
        gen.wait(30)
    return RunFigures(
        side=side,
        hubs=hubs,
        sent=sent,
        delivered=len(window.seen),
        duplicates=window.duplicates,
        p50_ms=percentile(window.latencies_us, 0.50),
        p99_ms=percentile(window.latencies_us, 0.99),
        cpu_pct=100 * cpu / seconds,
        rss_mb=rss,
    )


@dataclass
class Comparison:
    """One hub count: every repetition's figures of both sides."""

    hubs: int
    runs: list[tuple[RunFigures, RunFigures]]  # (gatewayd, floor) per repetition

    def ratios(self, figure: str) -> list[float]:
        """gatewayd ÷ floor per repetition; a repetition whose floor measured zero (CPU
        below the clock tick of a short run) has no ratio."""
        return [getattr(g, figure) / getattr(f, figure) for g, f in self.runs if getattr(f, figure)]

    def medians(self, side: int, figure: str) -> float:
        return statistics.median(getattr(pair[side], figure) for pair in self.runs)

    def all_delivered(self) -> bool:
        return all(g.lost == 0 for g, _ in self.runs)


def run(
    hub_counts: Sequence[int], seconds: float, repeats: int, log: Any = sys.stderr
) -> list[Comparison]:
    results = []
    index = 0
    with tempfile.TemporaryDirectory(prefix="gatewayd-bench-") as tmp:
        workdir = Path(tmp)
        broker = Broker(workdir / "broker")
        broker.start()
        watch = Watch(broker.host, broker.port)
        try:
            for hubs in hub_counts:
                runs = []
                for rep in range(repeats):
                    order = SIDES if rep % 2 == 0 else SIDES[::-1]
                    figures: dict[str, RunFigures] = {}
                    for side in order:
                        index += 1
                        figures[side] = run_once(side, hubs, seconds, broker, watch, workdir, index)
                        f = figures[side]
                        print(
                            f"  {hubs} hubs #{rep + 1} {side}: {f.delivered}/{f.sent} delivered, "
                            f"p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms, CPU {f.cpu_pct:.1f} %, "
                            f"RSS {f.rss_mb:.0f} MB",
                            file=log,
                            flush=True,
                        )
                    runs.append((figures["gatewayd"], figures["floor"]))
                results.append(Comparison(hubs, runs))
        finally:
            watch.close()
            broker.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hubs", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for c in run(args.hubs, args.seconds, args.repeats):
        for figure in ("p50_ms", "p99_ms", "cpu_pct"):
            r = c.ratios(figure)
            print(
                f"{c.hubs} hubs {figure}: gatewayd {c.medians(0, figure):.2f}, "
                f"floor {c.medians(1, figure):.2f}, ratio {min(r):.2f}/"
                f"{statistics.median(r):.2f}/{max(r):.2f}"
            )


if __name__ == "__main__":
    main()
