"""Session takeover or broker trouble: the MQTT 5 reason code, or drops in a row (3.1.1)."""

from __future__ import annotations

import aiomqtt

from gatewayd.daemon.session_takeover import (
    SESSION_TAKEN_OVER,
    TakeoverWatch,
    reason_code_of,
)


def test_the_mqtt5_reason_code_is_a_takeover_at_once() -> None:
    takeover = TakeoverWatch().dropped(0.0, SESSION_TAKEN_OVER)
    assert takeover is not None and takeover.certain


def test_one_or_two_drops_are_not_a_takeover() -> None:
    watch = TakeoverWatch()
    assert watch.dropped(0.0, 7) is None
    assert watch.dropped(5.0, None) is None


def test_three_drops_in_a_minute_are_a_suspected_takeover() -> None:
    watch = TakeoverWatch()
    watch.dropped(0.0, 7)
    watch.dropped(20.0, 7)
    takeover = watch.dropped(59.0, 7)
    assert takeover is not None and not takeover.certain and takeover.drops_in_window == 3


def test_drops_spread_over_more_than_a_minute_are_not() -> None:
    watch = TakeoverWatch()
    for t in (0.0, 40.0, 80.0, 120.0):
        assert watch.dropped(t, 7) is None


def test_reason_code_is_read_from_the_error_or_its_cause() -> None:
    assert reason_code_of(aiomqtt.MqttCodeError(SESSION_TAKEN_OVER, "x")) == SESSION_TAKEN_OVER
    try:
        try:
            raise aiomqtt.MqttCodeError(SESSION_TAKEN_OVER, "Unexpected disconnection")
        except aiomqtt.MqttError as inner:
            raise aiomqtt.MqttError("Disconnected during message iteration") from inner
    except aiomqtt.MqttError as outer:
        assert reason_code_of(outer) == SESSION_TAKEN_OVER
    assert reason_code_of(aiomqtt.MqttError("no code")) is None
