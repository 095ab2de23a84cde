"""What the WAN and HAN probes share: their hub, clock and schedule, and the silent-hub rule.

A probe polls on its stage's retry policy and wakes early on hub events. When the hub
goes silent (the driver's rule), the probe records it once, reports it and wakes, so its
loop stops and the job ends failed: no stage outcome rests on a silence the kit's own
timer filled in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gatewayd.clock import Clock
from gatewayd.config.kit import StageTiming
from gatewayd.engine.progress import Kind, Reporter, Stage
from gatewayd.engine.retry import PollSchedule, RetryPolicy
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_drivers.commshub.silence import Silence

# Closing reads tried before giving up; the driver calls the hub silent long before (three
# timeouts in a row), so this only bounds a hub that keeps half-answering.
FINAL_READ_TRIES = 6


class Probe:
    def __init__(
        self,
        stage: Stage,
        hub: HubClient,
        clock: Clock,
        timing: StageTiming,
        policy: RetryPolicy,
        report: Reporter,
    ) -> None:
        self.stage = stage
        self.hub = hub
        self.clock = clock
        self.timing = timing
        self.report = report
        self._wake = asyncio.Event()
        self._schedule = PollSchedule(policy, clock, wake=self._wake)
        self._start = self._schedule.started_at
        self._error: str | None = None
        self.link_down = False
        self.silence: Silence | None = None

    def _heard_silence(self, silence: Silence | None) -> None:
        if silence is None or self.silence is not None:
            return
        self.silence = silence
        self._error = f"the hub stopped answering: {silence.reason}"
        self.report(self.stage, Kind.LINK, f"The hub stopped answering ({silence.reason})")
        self._wake.set()

    async def _read_until_answered(self, read: Callable[[], Awaitable[bool]]) -> None:
        """A closing read the verdict rests on: one timeout alone is retried, until the hub
        answers (``read`` returns True), the link goes or the hub counts as silent."""
        for _ in range(FINAL_READ_TRIES):
            if await read() or self.link_down or self.silence is not None:
                return
