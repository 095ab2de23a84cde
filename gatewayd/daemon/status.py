"""What the kit is doing, read three ways: for ``systemctl status``, ``request/status`` and
the metrics.

Lifecycle side of the daemon. ``KitStatus`` reads the hubs, the running jobs, the MQTT link
and what waits for the broker (in the outbox, or in memory while the disk refuses writes) at
the moment it is asked; ``StatusReporter`` sends systemd the line when it changes, at once
after a job or link change and otherwise every few seconds.

The status request and response models are imported when a back office first asks for the
status, not with this module: the daemon reaches READY without them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from gatewayd import __version__
from gatewayd.clock import Clock
from gatewayd.contract import Presence
from gatewayd.daemon.hubs import Hubs
from gatewayd.daemon.jobs import JobRunner
from gatewayd.daemon.metrics import MEMORY_DROPS, HubReading, KitReading
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import Outbox
from gatewayd.daemon.publisher import Publisher
from gatewayd.daemon.sd_notify import Notifier

if TYPE_CHECKING:
    from gatewayd.contract import StatusRequest, StatusResponse

__all__ = ["KitStatus", "StatusReporter"]

# Seconds between STATUS checks when nothing signalled a change: the outbox depth and the
# hubs' links change without telling.
STATUS_EVERY_S = 5.0


class KitStatus:
    def __init__(
        self,
        *,
        hubs: Hubs,
        jobs: JobRunner,
        link: MqttLink,
        outbox: Outbox,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self._hubs = hubs
        self._jobs = jobs
        self._link = link
        self._outbox = outbox
        self._publisher = publisher
        self._clock = clock

    def line(self) -> str:
        """What the kit is doing, in a few words, for ``systemctl status``."""
        busy = [f"{h.job.job_id} on {h.hub}" for h in self._jobs.running()]
        doing = f"running {', '.join(busy)}" if busy else "idle"
        mqtt = "MQTT connected" if self._link.connected else "MQTT down"
        depth = self._publisher.waiting()
        queued = f", {depth} queued" if depth else ""
        return f"{doing}; {mqtt}{queued}; hubs {self._hubs.up_count()}/{len(self._hubs)} up"

    def response(self, req: StatusRequest) -> StatusResponse:
        from gatewayd.contract import HubStatusDoc, OutboxDoc, RunningJobDoc, StatusResponse

        oldest_age = self._publisher.oldest_age_s()
        depth = self._publisher.waiting()
        return StatusResponse(
            transaction=req.transaction,
            session=self._link.session,
            version=__version__,
            hubs=[
                HubStatusDoc(
                    name=rt.name,
                    availability=Presence.ONLINE if rt.client.connected else Presence.OFFLINE,
                    wan_state=rt.wan_state,
                    job_id=self._jobs.job_on(rt.name),
                )
                for rt in self._hubs
            ],
            jobs=[
                RunningJobDoc(
                    job_id=h.job.job_id, hub=h.hub, stage=h.stage, started_at=h.started_at
                )
                for h in self._jobs.running()
            ],
            outbox=OutboxDoc(
                depth=depth,
                oldest_created_at=(
                    self._clock.wall() - timedelta(seconds=oldest_age) if depth else None
                ),
            ),
        )

    def reading(self) -> KitReading:
        """The live values the metrics endpoint reads at each scrape."""
        return KitReading(
            hubs=tuple(
                HubReading(rt.name, rt.client.snapshot_stats(), rt.wan_rssi_dbm)
                for rt in self._hubs
            ),
            mqtt_connected=self._link.connected,
            mqtt_session_takeovers=self._link.takeovers,
            outbox_depth=self._outbox.depth(),
            outbox_oldest_age_s=self._publisher.oldest_age_s(),
            outbox_dropped={
                **{r.value: n for r, n in self._outbox.dropped_total.items()},
                MEMORY_DROPS: self._publisher.dropped_held,
            },
            jobs_running=self._jobs.count(),
            outbox_memory_messages=self._publisher.held(),
        )

    def queued(self) -> int:
        """Messages waiting for the broker, in the outbox or in memory."""
        return self._publisher.waiting()


class StatusReporter:
    def __init__(self, line: Callable[[], str], notifier: Notifier) -> None:
        self._line = line
        self._notifier = notifier
        self._changed = asyncio.Event()

    def touch(self) -> None:
        """Something the line shows changed: report it now rather than at the next tick."""
        self._changed.set()

    async def run(self) -> None:
        last = ""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATUS_EVERY_S):
                    await self._changed.wait()
            self._changed.clear()
            line = self._line()
            if line != last:
                self._notifier.status(line)
                last = line
