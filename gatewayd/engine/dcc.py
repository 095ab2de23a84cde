"""DCC notices: the DCC Service Centre's word that it cannot reach a job's devices.

An input that can arrive at any point of a job. Before the verdict it wins and
ends the probes; after the verdict it is logged and changes nothing. ``gatewayd
probe`` feeds it with ``--dcc-notice AFTER_S[,RESUME_ISO8601]`` (``ScheduledNotice``);
``gatewayd run`` feeds it the back office's notices from MQTT (the kit's and its
region's ``dcc/notice`` topics), each to the running jobs it concerns.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from gatewayd.clock import Clock
from gatewayd.engine.outcomes import DccNotice

_log = logging.getLogger(__name__)


class DccInput:
    """One job's DCC notice slot: ``deliver`` from anywhere, ``wait`` in the engine."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._notice: DccNotice | None = None
        self._arrived = asyncio.Event()
        self._closed = False
        self.ignored: list[DccNotice] = []

    @property
    def notice(self) -> DccNotice | None:
        return self._notice

    def deliver(self, notice: DccNotice) -> bool:
        """Hand a notice to the job; False (and logged) when the verdict was already reached."""
        if self._closed:
            self.ignored.append(notice)
            _log.warning(
                "DCC notice after the verdict ignored job=%s received_at=%s",
                self.job_id,
                notice.received_at.isoformat(),
            )
            return False
        if self._notice is None:
            self._notice = notice
            self._arrived.set()
        return True

    async def wait(self) -> DccNotice:
        await self._arrived.wait()
        assert self._notice is not None
        return self._notice

    def close(self) -> None:
        """The verdict is reached: later notices change nothing."""
        self._closed = True


@dataclass(frozen=True)
class ScheduledNotice:
    """``--dcc-notice AFTER_S[,RESUME_ISO8601]``: a notice injected AFTER_S site seconds in."""

    after_s: float
    not_before: datetime | None

    @classmethod
    def parse(cls, text: str) -> ScheduledNotice:
        after, _, resume = text.partition(",")
        try:
            after_s = float(after)
        except ValueError:
            raise ValueError(
                f"--dcc-notice {text!r}: AFTER_S must be a number of seconds, got {after!r}"
            ) from None
        if after_s < 0:
            raise ValueError(f"--dcc-notice {text!r}: AFTER_S must not be negative")
        not_before = None
        if resume:
            try:
                not_before = datetime.fromisoformat(resume)
            except ValueError:
                raise ValueError(
                    f"--dcc-notice {text!r}: {resume!r} is not an ISO 8601 date-time "
                    "(e.g. 2026-12-01T08:00:00Z)"
                ) from None
            if not_before.tzinfo is None:
                not_before = not_before.replace(tzinfo=UTC)
        return cls(after_s, not_before)

    async def inject(self, dcc: DccInput, clock: Clock) -> None:
        await clock.sleep(self.after_s)
        dcc.deliver(
            DccNotice(
                received_at=clock.wall(),
                not_before=self.not_before,
                reference="cli",
                text="DCC Service Centre cannot communicate with the devices (injected)",
            )
        )
