"""A process that keeps an MqttLink up until it is killed: for last-will tests.

Usage: python -m tests.integration.mqtt_link_child HOST PORT STATE_DIR
Prints "connected <session>" once connected.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gatewayd.config.mqtt import MqttConfig
from gatewayd.daemon.mqtt_link import MqttLink


async def main(host: str, port: int, state_dir: Path) -> None:
    config = MqttConfig(
        kit_id="kit-child", host=host, port=port, state_dir=state_dir, keepalive_s=5
    )
    link = MqttLink(config, state_topic="gatewayd/kit-child/state")
    link.start()
    await link.wait_connected(20)
    print(f"connected {link.session}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
