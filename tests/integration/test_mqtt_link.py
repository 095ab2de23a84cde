"""The MQTT link against a real mosquitto on loopback: presence, sessions, will, TLS."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from gatewayd.config.mqtt import MqttConfig, MqttTls
from gatewayd.daemon.mqtt_link import MqttLink, MqttUnavailable
from tests.mqtt_broker import LOOPBACK, Broker, make_tls_files
from tests.waiting import wait_until

STATE = "gatewayd/kit-1/state"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def config(broker: Broker, state_dir: Path, **extra: object) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "kit_id": "kit-1",
            "host": LOOPBACK,
            "port": broker.port,
            "state_dir": state_dir,
            "reconnect_first_s": 0.05,
            "reconnect_max_s": 0.3,
            **extra,
        }
    )


class Watcher:
    """A plain subscriber, as a back office would be."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, dict[str, object], bool]] = asyncio.Queue()

    async def run(self, host: str, port: int, topic: str) -> None:
        while True:
            try:
                async with aiomqtt.Client(host, port, identifier="watcher") as client:
                    await client.subscribe(topic, qos=1)
                    async for msg in client.messages:
                        body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                        self.messages.put_nowait((str(msg.topic), body, msg.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)  # a back office's retry pause while the broker is down

    async def expect(self, **fields: object) -> dict[str, object]:
        """The next message whose body has these fields (earlier ones are skipped)."""
        async with asyncio.timeout(15):
            while True:
                _, body, _ = await self.messages.get()
                if all(body.get(k) == v for k, v in fields.items()):
                    return body


@pytest.fixture
async def watcher(broker: Broker) -> AsyncIterator[Watcher]:
    w = Watcher()
    task = asyncio.create_task(w.run(broker.host, broker.port, STATE))
    try:
        yield w
    finally:
        task.cancel()


async def test_online_with_session_then_offline_on_clean_stop(
    broker: Broker, watcher: Watcher, tmp_path: Path
) -> None:
    link = MqttLink(config(broker, tmp_path / "state"), state_topic=STATE)
    link.start()
    assert await link.wait_connected(10)
    await watcher.expect(state="online", session=1)
    assert "as gatewayd-kit-1 (p5," in broker.log()  # MQTT 5 by default
    await link.stop()
    await watcher.expect(state="offline", session=1)
    assert (tmp_path / "state" / "mqtt-session").read_text().strip() == "1"


async def test_starts_with_the_broker_down_and_connects_when_it_comes_up(
    broker: Broker, tmp_path: Path
) -> None:
    broker.stop()
    link = MqttLink(config(broker, tmp_path / "state"), state_topic=STATE)
    link.start()
    try:
        assert not await link.wait_connected(0.5)
        assert link.last_error is not None
        with pytest.raises(MqttUnavailable):
            await link.publish("gatewayd/kit-1/x", b"{}")
        broker.start()
        assert await link.wait_connected(10)
        assert link.session == 1  # failed attempts do not use up session numbers
    finally:
        await link.stop()


async def test_broker_restart_reconnects_with_the_next_session(
    broker: Broker, watcher: Watcher, tmp_path: Path
) -> None:
    link = MqttLink(config(broker, tmp_path / "state"), state_topic=STATE)
    link.start()
    try:
        assert await link.wait_connected(10)
        await watcher.expect(state="online", session=1)
        broker.stop()
        await wait_until(lambda: not link.connected)
        broker.start()
        await watcher.expect(state="online", session=2)
        assert link.session == 2 and link.connects == 2
    finally:
        await link.stop()


async def test_session_survives_a_restart_of_the_kit(broker: Broker, tmp_path: Path) -> None:
    for expected in (1, 2, 3):
        link = MqttLink(config(broker, tmp_path / "state"), state_topic=STATE)
        link.start()
        assert await link.wait_connected(10)
        assert link.session == expected
        await link.stop()


async def test_publish_waits_for_the_broker(broker: Broker, tmp_path: Path) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def collect() -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier="c") as client:
            await client.subscribe("gatewayd/kit-1/events", qos=1)
            subscribed.set()
            async for msg in client.messages:
                got.put_nowait(bytes(msg.payload))  # type: ignore[arg-type]

    task = asyncio.create_task(collect())
    link = MqttLink(config(broker, tmp_path / "state"), state_topic=STATE)
    link.start()
    try:
        assert await link.wait_connected(10)
        await asyncio.wait_for(subscribed.wait(), 10)  # a message before it would be lost
        await link.publish("gatewayd/kit-1/events", b'{"n": 1}', qos=1)
        assert await asyncio.wait_for(got.get(), 10) == b'{"n": 1}'
    finally:
        task.cancel()
        await link.stop()


async def test_last_will_says_offline_with_the_same_session_when_killed(
    broker: Broker, watcher: Watcher, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.mqtt_link_child",
        broker.host, str(broker.port), str(tmp_path / "child"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    session = int(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    # keepalive 5 s: the broker notices within 1.5 keepalives and sends the will.
    body = await asyncio.wait_for(
        _expect_on(broker, "gatewayd/kit-child/state", state="offline"), 20
    )
    assert body["session"] == session


async def _expect_on(broker: Broker, topic: str, **fields: object) -> dict[str, object]:
    async with aiomqtt.Client(broker.host, broker.port, identifier="will-watcher") as client:
        await client.subscribe(topic, qos=1)
        async for msg in client.messages:
            body: dict[str, object] = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
            if all(body.get(k) == v for k, v in fields.items()):
                return body
    raise AssertionError("subscription ended")


@pytest.mark.parametrize("source", ["env", "credential"])
async def test_the_password_is_used_and_never_logged(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    secret = "s3cret-Value-42"
    if source == "env":
        monkeypatch.setenv("GATEWAYD_TEST_MQTT_PASSWORD", secret)
        password: dict[str, object] = {"password_env": "GATEWAYD_TEST_MQTT_PASSWORD"}
    else:
        # As systemd's LoadCredential= leaves it: a directory of files, named by the variable.
        (tmp_path / "credentials").mkdir()
        (tmp_path / "credentials" / "mqtt-password").write_text(secret)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
        password = {"password_credential": "mqtt-password"}
    caplog.set_level(logging.DEBUG)
    broker.stop()  # force a few failed attempts, which log
    cfg = config(broker, tmp_path / "state", username="kit-1", **password)
    link = MqttLink(cfg, state_topic=STATE)
    link.start()
    try:
        await wait_until(lambda: link.last_error is not None)  # an attempt failed and logged
        broker.start()
        assert await link.wait_connected(10)
    finally:
        await link.stop()
    assert "broker unreachable" in caplog.text
    assert secret not in caplog.text
    assert secret not in repr(cfg)


async def test_missing_password_variable_is_reported_not_raised(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAYD_NO_SUCH_VAR", raising=False)
    cfg = config(broker, tmp_path / "state", password_env="GATEWAYD_NO_SUCH_VAR")
    link = MqttLink(cfg, state_topic=STATE)
    link.start()
    try:
        assert not await link.wait_connected(0.5)
        assert link.last_error is not None and "GATEWAYD_NO_SUCH_VAR" in link.last_error
    finally:
        await link.stop()


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    tls, client_cert, client_key = make_tls_files(certs)
    broker = Broker(tmp_path / "tls-broker", tls=tls)
    broker.start()
    try:
        cfg = config(
            broker,
            tmp_path / "state",
            tls=MqttTls(ca_file=tls.ca, cert_file=client_cert, key_file=client_key),
        )
        link = MqttLink(cfg, state_topic=STATE)
        link.start()
        try:
            assert await link.wait_connected(10), link.last_error
        finally:
            await link.stop()
        # Without the client certificate the broker refuses the kit.
        bad = config(broker, tmp_path / "state2", tls=MqttTls(ca_file=tls.ca))
        link = MqttLink(bad, state_topic=STATE)
        link.start()
        try:
            await wait_until(lambda: link.last_error is not None, timeout=15)
            assert not link.connected
        finally:
            await link.stop()
    finally:
        broker.stop()


async def test_mqtt_3_1_1_as_an_option(broker: Broker, watcher: Watcher, tmp_path: Path) -> None:
    link = MqttLink(config(broker, tmp_path / "state", protocol="3.1.1"), state_topic=STATE)
    link.start()
    try:
        assert await link.wait_connected(10)
        await watcher.expect(state="online", session=1)
    finally:
        await link.stop()
    # mosquitto logs the protocol as p2 for MQTT 3.1.1 and p5 for MQTT 5.
    assert "as gatewayd-kit-1 (p2," in broker.log()


async def test_a_stop_while_connecting_ends_promptly_and_never_leaves_online(
    broker: Broker, tmp_path: Path
) -> None:
    # A stop signal can come at any point of a connect; sweep the moment across it.
    for n in range(25):
        link = MqttLink(config(broker, tmp_path / f"state-{n}"), state_topic=STATE)
        link.start()
        await asyncio.sleep(n * 0.0005)  # the moment of the stop is what is swept
        await asyncio.wait_for(link.stop(), 5)
        assert not link.connected
    async with aiomqtt.Client(broker.host, broker.port, identifier="late-reader") as c:
        await c.subscribe(STATE, qos=1)
        try:
            async with asyncio.timeout(1):
                async for msg in c.messages:  # the retained state, if any was left
                    body = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                    assert body["state"] == "offline", body
                    break
        except TimeoutError:
            pass  # nothing retained: no link ever got as far as announcing itself


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_second_kit_with_the_same_client_id_is_reported_as_a_takeover(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, protocol: str
) -> None:
    caplog.set_level(logging.INFO, logger="gatewayd")
    first = MqttLink(config(broker, tmp_path / "a", protocol=protocol), state_topic=STATE)
    second = MqttLink(config(broker, tmp_path / "b", protocol=protocol), state_topic=STATE)
    first.start()
    try:
        assert await first.wait_connected(10)
        second.start()  # the same kit_id, so the same client id: the broker keeps one
        async with asyncio.timeout(30):
            while first.takeovers == 0:
                await asyncio.sleep(0.02)
        await second.stop()
        assert await first.wait_connected(10)  # back once the other kit has gone
    finally:
        await second.stop()
        await first.stop()
    takeover = [r for r in caplog.records if "session taken over" in r.getMessage()]
    assert takeover and "client_id='gatewayd-kit-1'" in takeover[0].getMessage()
    # MQTT 5 brokers may say so (reason 0x8E; mosquitto 2.0 just closes the connection, as
    # under 3.1.1): either way the log says which evidence it rests on.
    evidence = ("the broker said so", "accepted connections in a minute")
    assert all(any(e in r.getMessage() for e in evidence) for r in takeover)
    # The broker was there all along: never reported as unreachable.
    assert "broker unreachable" not in caplog.text
