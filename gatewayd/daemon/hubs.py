"""The daemon's hubs: one client per configured hub, and its events forwarded to MQTT.

Hub state and events -> publications. Every event a hub reports is published on that
hub's events topic whether or not a job runs (naming the job when one does), and the
little the daemon keeps about each hub (WAN state, last RSSI, why the link is down) is
noted from those events for the status answer, the availability birth and the metrics.
What goes to MQTT names a hub by its configured name, never by its serial device's path.
Each hub's forwarder is a background task that the daemon's supervisor restarts if it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from gatewayd.config.kit import HubPort
from gatewayd.contract import StampFields, Topics, hub_event_payload
from gatewayd.daemon.publisher import Publisher
from gatewayd.daemon.supervisor import Spawn, Task, unsupervised
from gatewayd.engine.outcomes import enum_label
from gatewayd_drivers.commshub.client import ClientEvent, HubClient, LinkLost, LinkUp
from gatewayd_drivers.commshub.messages import WanStateChanged
from gatewayd_drivers.serial_link import SerialSettings

__all__ = ["HubRuntime", "Hubs"]


@dataclass
class HubRuntime:
    port: HubPort
    client: HubClient
    wan_state: str | None = None
    wan_rssi_dbm: int | None = None
    link_error: str | None = None

    @property
    def name(self) -> str:
        return self.port.name

    def public(self, text: str) -> str:
        """``text`` (a link error, a job step) fit for MQTT: the hub's serial device named by
        the hub's name, since a ``/dev/serial/by-id/...`` path holds the adapter's serial
        number."""
        return text.replace(self.port.port, f"<port of hub {self.name}>")

    def note(self, event: ClientEvent) -> None:
        """Keep what the status answer and the availability birth report about this hub."""
        if isinstance(event, WanStateChanged):
            self.wan_state = enum_label(event.status.state)
            if event.status.rssi_dbm is not None:
                self.wan_rssi_dbm = event.status.rssi_dbm
        elif isinstance(event, LinkLost):
            self.link_error = event.reason
        elif isinstance(event, LinkUp):
            self.link_error = None

    @property
    def down_reason(self) -> str | None:
        """Why the hub is unreachable, or None while it is connected."""
        if self.client.connected:
            return None
        reason = self.link_error or self.client.last_link_error
        return None if reason is None else self.public(reason)


class Hubs:
    """The kit's hubs in config order; the first one is the default for a request."""

    def __init__(
        self,
        ports: Sequence[HubPort],
        *,
        publisher: Publisher,
        topics: Topics,
        job_on: Callable[[str], str | None],
        on_link_change: Callable[[HubRuntime], Awaitable[None]],
    ) -> None:
        self._runtimes = {
            p.name: HubRuntime(
                p, HubClient(p.port, name=p.name, settings=SerialSettings(baudrate=p.baudrate))
            )
            for p in ports
        }
        self._publisher = publisher
        self._topics = topics
        self._job_on = job_on
        self._on_link_change = on_link_change
        self._tasks: list[asyncio.Task[None]] = []

    def __iter__(self) -> Iterator[HubRuntime]:
        return iter(self._runtimes.values())

    def __len__(self) -> int:
        return len(self._runtimes)

    def names(self) -> list[str]:
        return list(self._runtimes)

    def get(self, name: str) -> HubRuntime | None:
        return self._runtimes.get(name)

    def client(self, name: str | None) -> HubClient | None:
        """The named hub's client, the first hub's when ``name`` is None, None if unknown."""
        if name is None:
            first = next(iter(self._runtimes.values()), None)
            return first.client if first is not None else None
        rt = self._runtimes.get(name)
        return rt.client if rt is not None else None

    def up_count(self) -> int:
        return sum(1 for rt in self._runtimes.values() if rt.client.connected)

    async def start(self, spawn: Spawn = unsupervised) -> None:
        for rt in self._runtimes.values():
            await rt.client.start()
            self._tasks.append(
                spawn(Task.HUB_EVENTS, partial(self._forward, rt), name=f"hub_events {rt.name}")
            )

    def stop_forwarding(self) -> None:
        """Stop publishing hub events (the link is going down); the clients stay open."""
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        self.stop_forwarding()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for rt in self._runtimes.values():
            await rt.client.stop()

    async def _forward(self, rt: HubRuntime) -> None:
        with rt.client.events() as events:
            async for event in events:
                rt.note(event)
                published = (
                    LinkLost(rt.public(event.reason)) if isinstance(event, LinkLost) else event
                )
                self._emit(rt.name, published, self._job_on(rt.name))
                if isinstance(event, LinkLost | LinkUp):
                    await self._on_link_change(rt)

    def _emit(self, hub: str, event: ClientEvent, job_id: str | None) -> None:
        def build(stamp: StampFields) -> bytes:
            # The payload straight away: these are the most frequent messages, and their
            # values are the kit's own (see gatewayd.contract.convert).
            return hub_event_payload(event, hub=hub, job_id=job_id, stamp=stamp)

        self._publisher.emit(self._topics.hub_events(hub), build)
