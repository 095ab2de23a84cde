"""The kit under test: ``gatewayd run`` as its own process, so it can be SIGKILLed.

Writes the kit config (several hubs on the simulators' links, the loopback broker, the
state directory), starts the daemon, kills it, and keeps each run's lifetime: the figures
need to know when a daemon was there to receive what a hub said.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

SPEED = 50  # site seconds per real second, as the shipped scenarios run
STOP_TIMEOUT_S = 40.0  # a clean stop gives jobs and the outbox 10 s each, then goes offline

KIT_TOML = """\
time_scale = {speed}

[wan]
deadline_s = 300
max_reconnects = 2

[han]
deadline_s = 400
join_window_s = 40
join_attempts = 3

[poll]
first_interval_s = 5
max_interval_s = 20
attempt_timeout_s = 200

[metrics]
listen = "127.0.0.1:0"

[mqtt]
kit_id = "{kit_id}"
host = "{host}"
port = {port}
state_dir = "{state_dir}"
keepalive_s = 5
# Slower than the back office's reconnect, so it is subscribed again first after an outage.
reconnect_first_s = 0.3
reconnect_max_s = 1.0
"""


@dataclass
class Life:
    """One daemon process: when it started and when it ended (None while it runs)."""

    started: float
    ended: float | None = None
    killed: bool = False


@dataclass
class Kit:
    config: Path
    log: Path
    lives: list[Life] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None

    @classmethod
    def write(
        cls,
        workdir: Path,
        *,
        kit_id: str,
        host: str,
        port: int,
        state_dir: Path,
        hub_links: list[tuple[str, Path]],
    ) -> Kit:
        config = workdir / "kit.toml"
        text = KIT_TOML.format(
            speed=SPEED, kit_id=kit_id, host=host, port=port, state_dir=state_dir
        )
        for name, link in hub_links:
            text += f'\n[[hubs]]\nname = "{name}"\nport = "{link}"\n'
        config.write_text(text)
        return cls(config, workdir / "daemon.log")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gatewayd", "run", "--config", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self.lives.append(Life(asyncio.get_running_loop().time()))

    async def kill(self) -> None:
        """SIGKILL: no result recorded, no flush, no goodbye."""
        await self._end(signal.SIGKILL, killed=True)

    async def stop(self) -> int | None:
        """SIGTERM, the clean stop; SIGKILL if it does not end in time. Its exit code."""
        return await self._end(signal.SIGTERM, killed=False)

    async def _end(self, sig: signal.Signals, *, killed: bool) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            killed = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        life = self.lives[-1]
        life.ended = asyncio.get_running_loop().time()
        life.killed = killed
        return code

    def alive_at(self, at: float) -> bool:
        return any(
            life.started <= at and (life.ended is None or at <= life.ended) for life in self.lives
        )

    def kill_times(self) -> list[float]:
        return [life.ended for life in self.lives if life.killed and life.ended is not None]
