"""The chaos runs' mosquitto: the tests' loopback broker, made killable with SIGKILL.

It keeps what it acknowledged: persistence is saved after every change, and the back office
holds a persistent session, so a message the kit handed over before a kill still reaches
the back office after the restart. What the figures count is then what the kit lost, not
what a broker without persistence dropped on the floor. Almost: mosquitto sends its PUBACK
before its save, so a SIGKILL in between loses a message the kit was told is safe. The kill
times are kept, so such a loss is counted apart from the kit's.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from tests.mqtt_broker import Broker


class ChaosBroker(Broker):
    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, persistent=True)
        with self.config.open("a") as conf:
            # A save after every change: a SIGKILL loses (almost) nothing it acknowledged.
            conf.write("autosave_on_changes true\nautosave_interval 1\n")
        self.kills = 0
        self.kill_times: list[float] = []  # time.monotonic(), the clock of loop.time()

    def kill(self) -> None:
        """SIGKILL: no goodbye to any client, no final save."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.kill_times.append(time.monotonic())
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
        self.kills += 1
