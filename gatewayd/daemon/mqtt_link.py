"""The kit's connection to its MQTT broker, kept up forever.

Publications side of the flow. aiomqtt does not reconnect by itself, so this
supervisor runs the documented loop around ``async with Client(...)``: it
connects when the broker comes up (the kit starts and works normally while it
is down), retries with capped exponential backoff and jitter, and on every
connection publishes the retained ``online`` presence carrying that
connection's session number, with a last will of ``offline`` carrying the same
number (Sparkplug B's lesson: a late will of an old session is recognisable).
A clean stop publishes ``offline`` itself. Secrets are read at connect time and
never logged. A connection the broker accepted and then closed is "lost", not
"unreachable"; one closed because another client took the same client id over is
reported as a session takeover (``session_takeover``), and the link then waits its
longest backoff before connecting again, so two kits sharing an id do not fight
at full speed. Incoming messages leave here as ``InboundMessage``, so aiomqtt stops at
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from gatewayd.config.mqtt import MqttConfig, MqttProtocol, SecretError
from gatewayd.daemon.session_takeover import TakeoverWatch, reason_code_of
from gatewayd.daemon.supervisor import Spawn, Task, unsupervised
from gatewayd.logfmt import redact_value
from gatewayd.private_files import make_private_dir, private_opener
from gatewayd_drivers.backoff import Backoff

__all__ = ["InboundMessage", "MqttLink", "MqttUnavailable", "SessionCounter", "default_presence"]

_log = logging.getLogger(__name__)

# Seconds to wait for a PUBACK, and for a connect: a kit on a poor link is slow,
# but a broker that does not answer in this long is treated as gone.
PUBLISH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
# Publishes awaiting a PUBACK beyond the outbox's window before aiomqtt warns: presence,
# birth and answers to requests go out beside the outbox's.
PENDING_CALLS_MARGIN = 10
# How often a stopping link repeats the cancellation of its connection task.
STOP_RETRY_S = 0.2


class MqttUnavailable(ConnectionError):
    """Not connected to the broker now; the caller keeps the message (the outbox does)."""


@dataclass(frozen=True)
class InboundMessage:
    """A message the broker delivered on one of the link's subscriptions."""

    topic: str
    payload: bytes
    # Kept so that a handler can tell a retained copy from a message sent now.
    retain: bool

    @classmethod
    def of(cls, message: aiomqtt.Message) -> InboundMessage:
        payload: object = message.payload
        if isinstance(payload, bytes):
            raw = payload
        elif isinstance(payload, str):
            raw = payload.encode()
        else:
            # aiomqtt's payload type also admits numbers and None; a broker only sends bytes.
            raw = b""
        return cls(topic=str(message.topic), payload=raw, retain=bool(message.retain))


class SessionCounter:
    """The session number, on disk: one more for every connection, across restarts.

    A number is reserved (written and fsynced) before a connection is tried, so
    a crash right after connecting can never reuse it; a connection attempt
    that fails keeps its reservation for the next attempt.

    A disk that refuses the write (full, failing, out of file descriptors) never
    stops a connection: the number is then kept in memory only, above the one on
    disk and above every number this run used, with a warning, and the next
    reservation writes again. Only a restart before the disk works again can
    reuse such a number.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._unused: int | None = None
        self._highest = 0  # the highest number this run reserved

    def current(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise OSError(f"cannot read the MQTT session counter {self.path}: {exc}") from exc
        if not text.isdigit():
            # Going forward from a damaged file is safe; going back is not.
            _log.warning("damaged MQTT session counter, starting from 0 file=%s", self.path)
            return 0
        return int(text)

    def reserve(self) -> int:
        if self._unused is not None:
            return self._unused
        try:
            on_disk = self.current()
        except OSError as exc:
            on_disk = 0
            self._warn(self._highest + 1, exc)
        value = max(on_disk, self._highest) + 1
        try:
            self._write(value)
        except OSError as exc:
            self._warn(value, exc)
        self._highest = value
        self._unused = value
        return value

    def _write(self, value: int) -> None:
        make_private_dir(self.path.parent)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="ascii", opener=private_opener) as f:
                f.write(f"{value}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _warn(self, value: int, exc: OSError) -> None:
        _log.warning(
            "MQTT session counter not on disk, using a number kept in memory session=%d "
            "file=%s error=%r",
            value,
            self.path,
            exc.strerror or str(exc),
        )

    def used(self) -> None:
        """The reserved number went out on a connection: the next one is new."""
        self._unused = None


def default_presence(state: str, session: int) -> bytes:
    return json.dumps({"state": state, "session": session}).encode()


MessageHandler = Callable[[InboundMessage], Awaitable[None]]
ConnectedHandler = Callable[[int], Coroutine[Any, Any, None]]


class MqttLink:
    def __init__(
        self,
        config: MqttConfig,
        *,
        state_topic: str,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        on_connected: ConnectedHandler | None = None,
        presence: Callable[[str, int], bytes] = default_presence,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.state_topic = state_topic
        self.subscriptions = tuple(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._presence = presence
        self._rng = rng or random.Random()
        self.sessions = SessionCounter(config.state_dir / "mqtt-session")
        self.session = 0
        self.connects = 0
        self.takeovers = 0
        self._takeover_watch = TakeoverWatch()
        self._accepted = False  # the current connection attempt got as far as CONNACK
        self.last_error: str | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    @property
    def max_inflight(self) -> int:
        """QoS 1 publishes that may await their PUBACK at once (``[mqtt] max_inflight``)."""
        return self.config.max_inflight

    @property
    def connected(self) -> bool:
        return self._client is not None and self._connected.is_set()

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    def start(self, spawn: Spawn = unsupervised) -> None:
        if self._runner is None:
            self._stopping.clear()
            self._runner = spawn(Task.MQTT_LINK, self._run)

    async def stop(self) -> None:
        """Publish ``offline`` (when connected), disconnect cleanly, stop reconnecting."""
        self._stopping.set()
        client = self._client
        if client is not None and self._connected.is_set():
            try:
                await client.publish(
                    self.state_topic,
                    self._presence("offline", self.session),
                    qos=1,
                    retain=True,
                    timeout=PUBLISH_TIMEOUT_S,
                )
            except aiomqtt.MqttError as exc:
                _log.warning("could not publish offline at stop: %s", exc)
        runner, self._runner = self._runner, None
        if runner is not None:
            # A cancellation that lands while aiomqtt is connecting can be swallowed (it
            # waits with asyncio.wait_for, which on Python 3.11 may drop one), and the
            # runner then carries on connected: cancel until it is really gone.
            while not runner.done():
                runner.cancel()
                await asyncio.wait({runner}, timeout=STOP_RETRY_S)
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float | None = PUBLISH_TIMEOUT_S,
    ) -> None:
        """Publish and, for QoS 1, wait for the PUBACK; ``MqttUnavailable`` when down, or when
        no PUBACK came within ``timeout_s``.

        The PUBLISH is sent in the coroutine's first step, so publishes started as tasks go
        out in the order the tasks were created. ``timeout_s=None`` waits without a timer of
        its own, for a caller that bounds a whole window of publishes itself (the outbox's
        pump): aiomqtt runs every timed wait as one more task.
        """
        client = self._client
        if client is None or not self._connected.is_set():
            raise MqttUnavailable(f"not connected to the MQTT broker ({self._why_down()})")
        try:
            await client.publish(
                topic,
                payload,
                qos=qos,
                retain=retain,
                timeout=math.inf if timeout_s is None else timeout_s,
            )
        except aiomqtt.MqttError as exc:
            raise MqttUnavailable(f"publish to {topic} failed: {exc}") from None

    async def publish_if_connected(
        self, topic: str, payload: bytes, *, retain: bool = False
    ) -> None:
        """Publish at QoS 1 now, or drop it when down: for current values, which every connect
        publishes again, and for answers, which a requester asks for again."""
        with contextlib.suppress(MqttUnavailable):
            await self.publish(topic, payload, qos=1, retain=retain)

    def _why_down(self) -> str:
        return self.last_error or "not connected yet"

    async def _run(self) -> None:
        c = self.config
        backoff = Backoff(c.reconnect_first_s, 2.0, c.reconnect_max_s, 0.2, self._rng)
        while not self._stopping.is_set():
            taken_over = False
            self._accepted = False
            try:
                await self._connect_once(backoff)
            except aiomqtt.MqttError as exc:
                if self._accepted:
                    taken_over = self._note_drop(exc)
                else:
                    self._note_error(str(exc))
            except (SecretError, OSError, ssl.SSLError, ValueError) as exc:
                self._note_error(str(exc))
            if self._stopping.is_set():
                return
            delay = c.reconnect_max_s if taken_over else backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def _connect_once(self, backoff: Backoff) -> None:
        c = self.config
        session = self.sessions.reserve()
        password = c.read_password()
        redact_value(password)
        client = aiomqtt.Client(
            c.host,
            c.effective_port,
            identifier=c.effective_client_id,
            protocol=(
                aiomqtt.ProtocolVersion.V5
                if c.protocol is MqttProtocol.V5
                else aiomqtt.ProtocolVersion.V311
            ),
            will=aiomqtt.Will(
                self.state_topic, self._presence("offline", session), qos=1, retain=True
            ),
            keepalive=c.keepalive_s,
            username=c.username,
            password=password,
            tls_params=tls_params(c),
            tls_insecure=c.tls.insecure if c.tls is not None else None,
            timeout=CONNECT_TIMEOUT_S,
            # paho's own window (20 unless told), as wide as the outbox's and no wider: the
            # kit never has more in flight than the broker's Receive Maximum allows. An answer
            # or a presence that finds it full goes out with the next PUBACK.
            max_inflight_messages=c.max_inflight,
        )
        # aiomqtt logs a warning for every publish beyond 10 awaiting their PUBACK: the
        # outbox's window is that many on purpose, answers and presence a few more.
        client.pending_calls_threshold = c.max_inflight + PENDING_CALLS_MARGIN
        async with client:
            self._accepted = True
            self.sessions.used()
            self.session = session
            self.connects += 1
            self.last_error = None
            backoff.reset()
            if self._stopping.is_set():
                # Connected while stopping (see ``stop``): never announce ``online`` then.
                return
            await client.publish(
                self.state_topic,
                self._presence("online", session),
                qos=1,
                retain=True,
                timeout=PUBLISH_TIMEOUT_S,
            )
            for topic_filter in self.subscriptions:
                await client.subscribe(topic_filter, qos=1)
            self._client = client
            self._connected.set()
            _log.info(
                "mqtt connected broker=%s:%d client_id=%s session=%d",
                c.host,
                c.effective_port,
                c.effective_client_id,
                session,
            )
            helpers: list[asyncio.Task[None]] = []
            if self._on_connected is not None:
                # Replays can take a while: messages must keep flowing meanwhile.
                helpers.append(asyncio.create_task(self._on_connected(session)))
            try:
                async for message in client.messages:
                    await self._dispatch(InboundMessage.of(message))
            finally:
                self._connected.clear()
                self._client = None
                for task in helpers:
                    task.cancel()
                for task in helpers:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _dispatch(self, message: InboundMessage) -> None:
        if self._on_message is None:
            return
        try:
            await self._on_message(message)
        except Exception:
            # One bad message must not drop the connection for every other.
            _log.exception("mqtt message handler failed topic=%r", message.topic)

    def _note_drop(self, exc: aiomqtt.MqttError) -> bool:
        """An accepted connection ended from the broker's side; True for a session takeover."""
        c = self.config
        takeover = self._takeover_watch.dropped(time.monotonic(), reason_code_of(exc))
        if takeover is None:
            _log.warning(
                "mqtt connection lost, reconnecting broker=%s:%d error=%r",
                c.host,
                c.effective_port,
                str(exc),
            )
            self.last_error = f"connection lost: {exc}"
            return False
        self.takeovers += 1
        why = (
            "the broker said so"
            if takeover.certain
            else f"the broker closed {takeover.drops_in_window} accepted connections in a minute"
        )
        _log.error(
            "mqtt session taken over: another client connected with this kit's client id; "
            "two kits share a kit_id or client_id client_id=%r broker=%s:%d evidence=%r",
            c.effective_client_id,
            c.host,
            c.effective_port,
            why,
        )
        self.last_error = (
            f"session taken over: another client uses client id {c.effective_client_id!r}"
        )
        return True

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            _log.warning(
                "mqtt broker unreachable, retrying broker=%s:%d error=%r",
                self.config.host,
                self.config.effective_port,
                message,
            )
        self.last_error = message


def tls_params(c: MqttConfig) -> aiomqtt.TLSParameters | None:
    if c.tls is None:
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(c.tls.ca_file) if c.tls.ca_file is not None else None,
        certfile=str(c.tls.cert_file) if c.tls.cert_file is not None else None,
        keyfile=str(c.tls.key_file) if c.tls.key_file is not None else None,
    )
