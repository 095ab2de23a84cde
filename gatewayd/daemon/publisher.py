"""Events and results to the broker, through the durable outbox, in order, losing nothing.

Publications side of the flow. ``emit`` stamps an event's envelope (session,
per-topic seq, event id, time), writes it to the outbox (on disk before it
returns) and wakes the pump; the pump publishes oldest first, waits for each
PUBACK and only then removes it. While the broker is unreachable messages
wait on disk, across restarts too; anything published late or again is marked
``replayed``. Presence, info and availability never go through here: their
current value is published on every connect instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from gatewayd.clock import Clock
from gatewayd.contract import StampFields, to_payload
from gatewayd.daemon.mqtt_link import MqttLink, MqttUnavailable
from gatewayd.daemon.outbox import MessageKind, NewMessage, Outbox, OutboxEntry
from gatewayd.daemon.supervisor import Spawn, Task, unsupervised

__all__ = ["Publisher"]

_log = logging.getLogger(__name__)

_BATCH = 100


def mark_replayed(payload: bytes) -> bytes:
    """The payload with ``replayed`` true, when it is an event envelope; as it was otherwise."""
    if b'"replayed":false' not in payload:
        return payload
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(body, dict) and body.get("replayed") is False:
        body["replayed"] = True
        return json.dumps(body, separators=(",", ":")).encode()
    return payload


class Publisher:
    def __init__(self, outbox: Outbox, link: MqttLink, clock: Clock) -> None:
        self.outbox = outbox
        self.link = link
        self.clock = clock
        self._seq: dict[tuple[int, str], int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def session(self) -> int:
        """The session an event created now belongs to (see the envelope's ``session``)."""
        if self.link.connected or self.link.session:
            return self.link.session
        # Not connected yet in this run: reserve the number on disk now (the first connection
        # goes out with it), so a run that ends before connecting is never followed by one
        # that stamps the same session again.
        return self.link.sessions.reserve()

    def stamp(self, topic: str) -> StampFields:
        session = self.session()
        key = (session, topic)
        self._seq[key] = self._seq.get(key, 0) + 1
        return StampFields(
            session=session,
            seq=self._seq[key],
            ts=self.clock.wall(),
            replayed=not self.link.connected,
        )

    def emit(
        self, topic: str, build: Callable[[StampFields], BaseModel], *, retain: bool = False
    ) -> OutboxEntry:
        """Stamp, store and queue one event built by ``build`` from its envelope fields."""
        message = build(self.stamp(topic))
        return self._queue(topic, to_payload(message), retain=retain, kind=MessageKind.EVENT)

    def emit_result(
        self,
        topic: str,
        document: BaseModel,
        *,
        settles: str | None = None,
        then: Sequence[tuple[str, Callable[[StampFields], BaseModel]]] = (),
    ) -> None:
        """A job's result (retained, and kept ahead of events when space runs short) with the
        events that go with it (``then``: topic and builder, as for ``emit``), queued in one
        transaction that also marks job ``settles`` settled in the job ledger."""
        messages = [NewMessage(topic, to_payload(document), retain=True, kind=MessageKind.RESULT)]
        messages += [NewMessage(t, to_payload(build(self.stamp(t)))) for t, build in then]
        self.outbox.append_all(messages, settles=settles)
        self._wake.set()

    def _queue(self, topic: str, payload: bytes, *, retain: bool, kind: MessageKind) -> OutboxEntry:
        entry = self.outbox.append(topic, payload, qos=1, retain=retain, kind=kind)
        self._wake.set()
        return entry

    def wake(self) -> None:
        """Something may be publishable now (a connection came up)."""
        self._wake.set()

    def start(self, spawn: Spawn = unsupervised) -> None:
        if self._task is None:
            self._task = spawn(Task.OUTBOX_PUMP, self._pump)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty or ``timeout_s`` passed (real seconds)."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.outbox.depth() > 0:
                    if not self.link.connected:
                        return False
                    self._wake.set()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False
        return True

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.link.connected:
                entries = self.outbox.pending(_BATCH)
                if not entries:
                    break
                if not await self._send(entries):
                    break

    async def _send(self, entries: list[OutboxEntry]) -> bool:
        for entry in entries:
            payload = mark_replayed(entry.payload) if entry.is_resend else entry.payload
            self.outbox.mark_attempted(entry.id)
            try:
                await self.link.publish(entry.topic, payload, qos=entry.qos, retain=entry.retain)
            except MqttUnavailable as exc:
                _log.info("publishing paused, %d waiting: %s", self.outbox.depth(), exc)
                return False
            self.outbox.ack(entry.id)
            self.published += 1
        return True
