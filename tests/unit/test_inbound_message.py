"""What the MQTT link hands on for a delivered message: topic, bytes and the retain flag."""

from __future__ import annotations

import aiomqtt
import pytest

from gatewayd.daemon.mqtt_link import InboundMessage


def message(payload: object, *, retain: bool = False) -> aiomqtt.Message:
    return aiomqtt.Message(
        "gatewayd/kit-1/request/status",
        payload,  # type: ignore[arg-type]
        qos=1,
        retain=retain,
        mid=1,
        properties=None,
    )


def test_bytes_and_topic_are_kept() -> None:
    got = InboundMessage.of(message(b'{"transaction": "1"}'))
    assert got == InboundMessage("gatewayd/kit-1/request/status", b'{"transaction": "1"}', False)


def test_the_retain_flag_is_kept() -> None:
    assert InboundMessage.of(message(b"{}", retain=True)).retain is True


def test_text_is_encoded() -> None:
    assert InboundMessage.of(message('{"é": 1}')).payload == '{"é": 1}'.encode()


@pytest.mark.parametrize("payload", [None, 7, 1.5])
def test_anything_else_is_empty(payload: object) -> None:
    assert InboundMessage.of(message(payload)).payload == b""


def test_it_cannot_be_changed() -> None:
    got = InboundMessage.of(message(b"{}"))
    with pytest.raises(AttributeError):
        got.topic = "elsewhere"  # type: ignore[misc]
