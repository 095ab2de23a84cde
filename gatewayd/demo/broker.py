"""An MQTT broker inside the demo process, so ``gatewayd demo`` needs nothing installed.

Demo only: a kit publishes to a real broker (mosquitto, EMQX). amqtt is pure Python
and runs on the demo's own event loop; it speaks MQTT 3.1.1 only, so the demo's kit
config sets ``protocol = "3.1.1"``. It listens on loopback, on a free port.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

__all__ = ["EmbeddedBroker", "free_loopback_port"]

HOST = "127.0.0.1"


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class BrokerMissing(RuntimeError):
    """The embedded broker's library is not installed; the message says how to get it."""


class EmbeddedBroker:
    def __init__(self, port: int | None = None) -> None:
        self.host = HOST
        self.port = port or free_loopback_port()
        self._broker: Any = None

    async def start(self) -> None:
        # Imported here: only the demo needs it, it is slow to import, and a kit installed
        # without the demo extra does not have it.
        try:
            from amqtt.broker import Broker  # type: ignore[import-untyped]
        except ImportError as exc:
            raise BrokerMissing(
                f"the embedded broker needs amqtt, which is not installed ({exc}): install "
                "the demo extra (pip install 'gatewayd[demo]'; ./dev.sh demo does), or give "
                "--config with a kit config whose [mqtt] names a broker"
            ) from None

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._broker = Broker(config)
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
