"""Benchmark: `gatewayd run` from process spawn to READY, against the import floor.

Not a test. Run: .venv/bin/python bench/startup.py [--repeats N] [--json]

Two timings, alternated and repeated, each in a fresh interpreter so that nothing is cached
in memory between them (the page cache and the byte-code files are warm for both):

- the import floor: ``python -c "import aiomqtt, pydantic, ..."`` with exactly the third-party
  libraries `gatewayd run` itself imports, from spawn to exit; no daemon can start faster than
  it can import what it runs with;
- start to ready: ``gatewayd run --config KIT.toml`` from spawn to its ``READY=1`` on the
  notify socket, the moment systemd counts the service as started. The daemon sends it once
  its metrics endpoint listens, its hubs are opening, its outbox is open and its MQTT link is
  starting; the bench owns the datagram socket, so nothing is polled, and it checks that
  /metrics answers once READY arrived.

Byte code: a kit installs gatewayd from a wheel, and pip writes the byte-code files of every
module, so neither side of the ratio should compile Python source. Both sides run with
``PYTHONPYCACHEPREFIX`` in the bench's temporary directory (and ``PYTHONDONTWRITEBYTECODE``
removed), and the untimed first runs fill it: the source tree and the environment stay as
they were, and a shell that forbids byte-code files does not charge the daemon for compiling
its own modules on every start while the libraries' files were compiled at install.

The kit is as small as a real one: a real mosquitto on a free loopback port and one simulated
hub (`gatewayd sim hub`), both started once for the whole run. One untimed start first creates
the daemon's state (session counter, outbox), so every timed start finds it as a restarted kit
does. Prints both series and min/median/max of their ratio, per repetition; ``run()`` returns
the same as a dict for a harness that runs every benchmark.

Wall time is the figure; beside it, the CPU time each process used up to the same moment
(the floor's from its exit status, the daemon's from ``/proc`` when READY arrives, to the
kernel's 10 ms tick). CPU time leaves out waiting for a CPU on a busy machine, though not the
slowdown that other work still causes, so it is a second view of the same start, not a
cleaner one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FLOOR_MODULES", "TARGET_RATIO", "main", "run"]

# The third-party packages that gatewayd's own modules import on the way to READY in `gatewayd
# run` (seen with `python -X importtime -m gatewayd run`); what they pull in themselves (paho,
# pydantic_core, typing_extensions...) comes along as it does in the daemon. `import pydantic`
# alone loads little: its names are found lazily, so the model machinery the daemon goes on to
# load (BaseModel, Field and their schema builder) counts on the daemon's side of the ratio.
FLOOR_MODULES = ("aiomqtt", "pydantic", "prometheus_client", "serialx")
# Issue 13: start to ready at most twice the import floor, median of the repetitions.
TARGET_RATIO = 2.0
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# The simulated hub's story: a shipped scenario whose WAN comes up at once; only the port it
# opens matters here.
SCENARIO = "quick"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _gatewayd() -> list[str]:
    # `python -m gatewayd` is the console script's `main()`, run by the interpreter (and so the
    # import path) this bench runs under.
    return [sys.executable, "-m", "gatewayd"]


def _python_env(pycache: Path) -> dict[str, str]:
    """The environment of every Python the bench starts: this one's, byte code kept in
    ``pycache`` (see the module docstring), and no systemd variables of the bench's own."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(pycache))
    for key in (
        "PYTHONDONTWRITEBYTECODE",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
    ):
        env.pop(key, None)
    return env


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


@contextlib.contextmanager
def _mosquitto(workdir: Path) -> Iterator[int]:
    """A mosquitto on a free loopback port, for the life of the block; yields the port."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        raise RuntimeError("mosquitto is not installed (./dev.sh test installs it)")
    port = _free_port()
    lines = ["persistence false", f"listener {port} {LOOPBACK}", "allow_anonymous true"]
    if os.geteuid() == 0:
        # Started as root it drops to its own user, which cannot read this directory.
        lines.insert(0, "user root")
    config = workdir / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening(port, proc, "mosquitto")
        yield port
    finally:
        _stop(proc)


@contextlib.contextmanager
def _hub_simulator(workdir: Path, env: dict[str, str]) -> Iterator[Path]:
    """`gatewayd sim hub` behind a link in ``workdir``, for the life of the block."""
    link = workdir / "hub"
    log = (workdir / "sim.log").open("wb")
    proc = subprocess.Popen(
        [*_gatewayd(), "sim", "hub", "--scenario", SCENARIO, "--link", str(link)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not link.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gatewayd sim hub did not start: {_tail(workdir / 'sim.log')}")
            time.sleep(0.02)
        yield link
    finally:
        _stop(proc)
        log.close()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start (code {proc.returncode})")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port}")


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass(frozen=True)
class Timing:
    """One timed process: wall seconds, and CPU seconds (user + system) when known."""

    wall_s: float
    cpu_s: float | None


def _cpu_at_ready(pid: int) -> float | None:
    """CPU seconds the process ``pid`` has used so far, all threads; None without ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Kit:
    """The daemon's config and notify socket; ``start_to_ready()`` times one start."""

    def __init__(
        self, workdir: Path, hub_link: Path, broker_port: int, env: dict[str, str]
    ) -> None:
        self.workdir = workdir
        self.env = dict(env, NOTIFY_SOCKET=str(workdir / "notify.sock"))
        self.metrics_port = _free_port()
        self.config = workdir / "kit.toml"
        self.config.write_text(
            "[hub]\n"
            'name = "hub1"\n'
            f'port = "{hub_link}"\n'
            "[metrics]\n"
            f'listen = "{LOOPBACK}:{self.metrics_port}"\n'
            "[mqtt]\n"
            'kit_id = "kit-bench"\n'
            f'host = "{LOOPBACK}"\n'
            f"port = {broker_port}\n"
            f'state_dir = "{workdir / "state"}"\n'
        )
        self.notify_path = workdir / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.notify.bind(str(self.notify_path))
        self.log = workdir / "gatewayd.log"

    def close(self) -> None:
        self.notify.close()

    def start_to_ready(self) -> Timing:
        """From spawning `gatewayd run` to its READY=1; stops it again before returning."""
        self._drain()
        with self.log.open("ab") as log:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*_gatewayd(), "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
            try:
                ready = self._wait_ready(proc) - start
                cpu = _cpu_at_ready(proc.pid)
                self._check_metrics()
            finally:
                _stop(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"gatewayd run exited {proc.returncode}: {_tail(self.log)}")
        return Timing(ready, cpu)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> float:
        self.notify.settimeout(0.1)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"gatewayd run exited {proc.returncode} before READY: {_tail(self.log)}"
                    ) from None
                continue
            at = time.perf_counter()
            if "READY=1" in data.decode(errors="replace").split("\n"):
                return at
        raise RuntimeError(f"gatewayd run sent no READY in {READY_TIMEOUT_S} s: {_tail(self.log)}")

    def _check_metrics(self) -> None:
        url = f"http://{LOOPBACK}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = answer.read().decode()
        if answer.status != 200 or "gatewayd_" not in body:
            raise RuntimeError(f"{url} answered {answer.status} without gatewayd's metrics")

    def _drain(self) -> None:
        # A previous daemon's STOPPING must not be read as this one's message.
        self.notify.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.notify.recv(4096)


def import_floor(env: dict[str, str], modules: tuple[str, ...] = FLOOR_MODULES) -> Timing:
    """A fresh interpreter importing ``modules``, from spawn to exit."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", f"import {', '.join(modules)}"], env=env)
    # wait4 rather than wait: it also gives the CPU time the child used.
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"importing {', '.join(modules)} failed ({proc.returncode})")
    return Timing(wall, usage.ru_utime + usage.ru_stime)


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run(repeats: int = 7) -> dict[str, Any]:
    """Alternate the import floor and a timed start ``repeats`` times; the figures as a dict.

    Per repetition: ``import_floor_s`` and ``start_to_ready_s`` (wall), ``ratio`` (start to
    ready over the floor of the same repetition), and the same three for CPU time under
    ``cpu`` (empty lists where ``/proc`` is missing). ``summary`` holds min/median/max of
    each series; ``target_met`` compares the median wall ratio with ``target_ratio``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    floor: list[Timing] = []
    ready: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="gatewayd-startup-") as tmp:
        workdir = Path(tmp)
        env = _python_env(workdir / "pycache")
        with _mosquitto(workdir) as broker_port, _hub_simulator(workdir, env) as link:
            kit = Kit(workdir, link, broker_port, env)
            try:
                # Untimed: byte-code files written, the daemon's state created.
                import_floor(env)
                kit.start_to_ready()
                for _ in range(repeats):
                    floor.append(import_floor(env))
                    ready.append(kit.start_to_ready())
            finally:
                kit.close()
    wall = _series([f.wall_s for f in floor], [r.wall_s for r in ready])
    cpu_pairs = [(f.cpu_s, r.cpu_s) for f, r in zip(floor, ready, strict=True)]
    known = [(f, r) for f, r in cpu_pairs if f is not None and r is not None]
    cpu = _series([f for f, _ in known], [r for _, r in known])
    median = wall["summary"]["ratio"]["median"]
    return {
        "name": "startup",
        "repeats": repeats,
        "floor_modules": list(FLOOR_MODULES),
        "import_floor_s": wall["import_floor_s"],
        "start_to_ready_s": wall["start_to_ready_s"],
        "ratio": wall["ratio"],
        "summary": wall["summary"],
        "cpu": cpu,
        "target_ratio": TARGET_RATIO,
        "target_met": median <= TARGET_RATIO,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": " ".join(
            f"{platform.machine()} {platform.processor() or ''} {platform.system()}".split()
        ),
        "cpus": os.cpu_count(),
    }


def _series(floor: list[float], ready: list[float]) -> dict[str, Any]:
    ratio = [r / f for r, f in zip(ready, floor, strict=True)]
    summary = (
        {
            "import_floor_s": _spread(floor),
            "start_to_ready_s": _spread(ready),
            "ratio": _spread(ratio),
        }
        if ratio
        else {}
    )
    return {
        "import_floor_s": floor,
        "start_to_ready_s": ready,
        "ratio": ratio,
        "summary": summary,
    }


def _report(result: dict[str, Any]) -> str:
    out = [
        f"python   {result['python']}",
        f"machine  {result['machine']}, {result['cpus']} CPUs",
        f"floor    python -c 'import {', '.join(result['floor_modules'])}'",
        "ready    gatewayd run --config KIT (mosquitto, 1 simulated hub) to READY=1",
        f"repeats  {result['repeats']}, alternating, each in a fresh process",
        "",
        f"{'':<26}{'min':>8}{'median':>8}{'max':>8}",
    ]
    for kind, summary in (("wall", result["summary"]), ("cpu", result["cpu"]["summary"])):
        for key, label in (
            ("import_floor_s", "import floor (s)"),
            ("start_to_ready_s", "start to ready (s)"),
            ("ratio", "ratio (ready/floor)"),
        ):
            if key in summary:
                s = summary[key]
                out.append(
                    f"{kind + ' ' + label:<26}{s['min']:>8.3f}{s['median']:>8.3f}{s['max']:>8.3f}"
                )
    verdict = "met" if result["target_met"] else "NOT met"
    out.append(f"target   median wall ratio <= {result['target_ratio']:g}: {verdict}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed pairs (default 7)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.repeats)
    print(json.dumps(result, indent=2) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
