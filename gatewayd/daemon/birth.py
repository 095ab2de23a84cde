"""The kit's birth: what it publishes, retained, on every connection and on a rebirth.

Publications side of the flow. On each connection the kit's ``info`` (version, config
digest, hubs, requests, capabilities) and each hub's availability (online, or offline with
the reason) go out retained, stamped with the connection's session; availability again
whenever a hub's link drops or comes back. A rebirth request repeats all of it, with the
``online`` state and the results of this run. These are current values, not events: they
skip the outbox, and a broker that is down gets them at the next connect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from gatewayd import __version__
from gatewayd.clock import Clock
from gatewayd.contract import (
    MAX_REQUEST_BYTES,
    Availability,
    Command,
    HubPortDoc,
    Info,
    Presence,
    Topics,
    state_payload,
    to_payload,
)
from gatewayd.daemon.hubs import HubRuntime, Hubs
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.engine.result import ResultDocument

__all__ = ["CAPABILITIES", "Birth"]

CAPABILITIES = ["commissioning", "dcc_notices", "durable_outbox"]


_log = logging.getLogger(__name__)


class Birth:
    def __init__(
        self,
        *,
        kit_id: str,
        link: MqttLink,
        clock: Clock,
        topics: Topics,
        hubs: Hubs,
        digest: Callable[[], str],
        rf_survey: bool,
        results: Callable[[], Mapping[str, ResultDocument]],
    ) -> None:
        self._kit_id = kit_id
        self._link = link
        self._clock = clock
        self._topics = topics
        self._hubs = hubs
        # Read at each birth: a reload (SIGHUP) changes the running config's digest.
        self._digest = digest
        self._rf_survey = rf_survey
        self._results = results
        # Publications running in tasks of their own; each leaves the set when it ends (a
        # list kept every finished one: 12,000 rebirths grew the daemon by 27 MB).
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self) -> None:
        """The kit's ``info`` and every hub's availability."""
        info = Info(
            kit_id=self._kit_id,
            session=self._link.session,
            ts=self._clock.wall(),
            version=__version__,
            config_digest=self._digest(),
            hubs=[HubPortDoc(name=rt.name, baudrate=rt.port.baudrate) for rt in self._hubs],
            requests=list(Command),
            capabilities=CAPABILITIES + (["rf_survey"] if self._rf_survey else []),
            max_request_bytes=MAX_REQUEST_BYTES,
            dcc_notice_topics=list(self._topics.dcc_notice_filters()),
        )
        await self._link.publish_if_connected(self._topics.info, to_payload(info), retain=True)
        for rt in self._hubs:
            await self.publish_availability(rt)

    async def publish_availability(self, rt: HubRuntime) -> None:
        connected = rt.client.connected
        doc = Availability(
            hub=rt.name,
            state=Presence.ONLINE if connected else Presence.OFFLINE,
            session=self._link.session,
            ts=self._clock.wall(),
            reason=rt.down_reason,
        )
        await self._link.publish_if_connected(
            self._topics.hub_availability(rt.name), to_payload(doc), retain=True
        )

    def publish_soon(self) -> None:
        """Publish the birth from a task of its own (from code that cannot wait for it)."""
        self._spawn(self.publish(), "birth")

    def rebirth_soon(self) -> None:
        """Publish everything again (``request/rebirth``) from a task of its own."""
        self._spawn(self.rebirth(), "rebirth")

    def _spawn(self, publishing: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(publishing, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("publishing the %s failed error=%r", task.get_name(), str(exc), exc_info=exc)

    @property
    def running(self) -> int:
        """Births and rebirths still being published."""
        return len(self._tasks)

    async def rebirth(self) -> None:
        """Publish the state, the birth and every result of this run again."""
        await self._link.publish_if_connected(
            self._topics.state, state_payload("online", self._link.session), retain=True
        )
        await self.publish()
        # A copy: a job may finish (adding its result) while this loop waits on a publish.
        for job_id, result in list(self._results().items()):
            await self._link.publish_if_connected(
                self._topics.job_result(job_id), to_payload(result), retain=True
            )

    def cancel(self) -> None:
        """Stop any birth still being published (the link is going down)."""
        for task in list(self._tasks):
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        if self._tasks:
            # Not their outcome: ``_ended`` logs a failure.
            await asyncio.wait(list(self._tasks))
        self._tasks.clear()
