"""The demo's embedded broker says how to install it when amqtt is missing."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gatewayd.demo.broker import BrokerMissing, EmbeddedBroker


def test_a_kit_without_the_demo_extra_gets_told_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail, as it does where amqtt is not installed.
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)
    with pytest.raises(BrokerMissing) as caught:
        asyncio.run(EmbeddedBroker().start())
    assert "pip install 'gatewayd[demo]'" in str(caught.value)
    assert "--config" in str(caught.value)
