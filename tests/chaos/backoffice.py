"""The chaos runs' back office: it records every message the kit publishes and sends requests.

It subscribes to everything under the kit's prefix with a persistent session and
reconnects at once whenever the broker goes away, so what it holds at the end is what a
careful back office would have received. Requests are matched to their responses by
``transaction``; a request whose answer is lost with the broker simply times out, and the
caller decides whether to send it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

RECONNECT_S = 0.05
# paho logs every broker kill as an error; here a kill is the point, and it is counted.
_QUIET = logging.getLogger("tests.chaos.paho")
_QUIET.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Received:
    at: float  # loop time at arrival
    topic: str
    body: Any  # parsed JSON, or the raw bytes when the payload is not JSON
    raw: bytes
    retain: bool


@dataclass
class BackOffice:
    host: str
    port: int
    base: str  # "gatewayd/<kit_id>"
    received: list[Received] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _client: aiomqtt.Client | None = None
    _waiting: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _listeners: list[Callable[[Received], None]] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self) -> None:
        """Stay subscribed until cancelled."""
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier="chaos-backoffice",
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                    keepalive=5,
                    logger=_QUIET,
                ) as client:
                    await client.subscribe(f"{self.base}/#", qos=1)
                    self._client = client
                    self.connected.set()
                    async for message in client.messages:
                        self._record(message)
            except aiomqtt.MqttError:
                pass
            finally:
                self._client = None
                self.connected.clear()
            await asyncio.sleep(RECONNECT_S)

    def listen(self, callback: Callable[[Received], None]) -> None:
        """Call ``callback`` with every message from now on, as it arrives."""
        self._listeners.append(callback)

    def _record(self, message: aiomqtt.Message) -> None:
        raw = message.payload if isinstance(message.payload, bytes) else b""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        seen = Received(
            asyncio.get_running_loop().time(), str(message.topic), body, raw, bool(message.retain)
        )
        self.received.append(seen)
        if seen.topic.startswith(f"{self.base}/response/") and isinstance(body, dict):
            future = self._waiting.pop(str(body.get("transaction")), None)
            if future is not None and not future.done():
                future.set_result(body)
        for listener in self._listeners:
            listener(seen)

    async def request(
        self, command: str, body: dict[str, Any], timeout_s: float
    ) -> dict[str, Any] | None:
        """Send one request and wait for its response; None when none came in time."""
        transaction = f"chaos-{next(self._numbers)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        payload = json.dumps({**body, "transaction": transaction}).encode()
        try:
            async with asyncio.timeout(timeout_s):
                await self.connected.wait()
                client = self._client
                if client is None:
                    return None
                await client.publish(f"{self.base}/request/{command}", payload, qos=1)
                return await future
        except (TimeoutError, aiomqtt.MqttError):
            return None
        finally:
            self._waiting.pop(transaction, None)

    def on_topic(self, suffix: str) -> list[Received]:
        topic = f"{self.base}/{suffix}"
        return [r for r in self.received if r.topic == topic]

    async def wait_for(self, pred: Callable[[Received], bool], timeout_s: float) -> Received | None:
        """The first message, already here or still to come, that ``pred`` accepts."""
        for seen in self.received:
            if pred(seen):
                return seen
        found: asyncio.Future[Received] = asyncio.get_running_loop().create_future()

        def check(seen: Received) -> None:
            if not found.done() and pred(seen):
                found.set_result(seen)

        self._listeners.append(check)
        try:
            async with asyncio.timeout(timeout_s):
                return await found
        except TimeoutError:
            return None
        finally:
            with contextlib.suppress(ValueError):
                self._listeners.remove(check)
