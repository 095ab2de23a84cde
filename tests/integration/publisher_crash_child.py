"""A kit's publisher that emits until it is killed, or drains what an earlier one left.

Usage: python -m tests.integration.publisher_crash_child STATE_DIR PORT RUN MODE

``emit``: emits bursts of events on four topics of run RUN (several per loop turn, so they
share commits) and a job result every few bursts, printing ``S <job>`` when a result's job is
settled (its result on disk: the promise the kill must not break). ``drain``: publishes what
the outbox holds, then one ``sentinel`` event, and prints ``drained`` once nothing waits.
Both print ``ready`` once connected to the broker.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.contract import StampFields
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import Outbox
from gatewayd.daemon.publisher import Publisher

KIT = "crashkit"
PREFIX = f"gatewayd/{KIT}"
TOPICS_PER_RUN = 4
EVENTS_PER_TOPIC_PER_BURST = 2
RESULT_EVERY = 4  # bursts
# Between bursts: paced below the drain's speed, so the outbox never nears its bounds.
BURST_INTERVAL_S = 0.004


class Event(BaseModel):
    run: int
    n: int
    session: int
    seq: int
    replayed: bool


class Result(BaseModel):
    job: str


def topic(run: int, t: int) -> str:
    return f"{PREFIX}/run{run}/t{t}"


async def main(state_dir: Path, port: int, run: int, mode: str) -> None:
    clock = SystemClock()
    outbox = Outbox(state_dir / "outbox.sqlite3", clock=clock)
    publishers: list[Publisher] = []

    async def connected(_session: int) -> None:
        for p in publishers:
            p.wake()

    config = MqttConfig(
        kit_id=KIT,
        host="127.0.0.1",
        port=port,
        state_dir=state_dir,
        reconnect_first_s=0.05,
        reconnect_max_s=0.3,
    )
    link = MqttLink(config, state_topic=f"{PREFIX}/state", on_connected=connected)
    publisher = Publisher(outbox, link, clock)
    publishers.append(publisher)
    publisher.start()
    link.start()
    if not await link.wait_connected(30):
        sys.exit(f"not connected: {link.last_error}")
    print("ready", flush=True)
    if mode == "drain":
        publisher.emit(
            f"{PREFIX}/sentinel",
            lambda st: Event(run=run, n=0, session=st.session, seq=st.seq, replayed=st.replayed),
        )
        while publisher.waiting():
            await asyncio.sleep(0.01)
        print("drained", flush=True)
        await publisher.stop()
        await link.stop()
        outbox.close()
        return
    counts = [0] * TOPICS_PER_RUN
    burst = 0
    while True:
        for _ in range(EVENTS_PER_TOPIC_PER_BURST):
            for t in range(TOPICS_PER_RUN):
                n = counts[t]
                counts[t] += 1
                publisher.emit(topic(run, t), _event(run, n))
        burst += 1
        if burst % RESULT_EVERY == 0:
            job = f"J-{run}-{burst // RESULT_EVERY}"
            publisher.emit_result(
                f"{PREFIX}/jobs/{job}/result",
                Result(job=job),
                settles=job,
                on_settled=_say_settled(job),
            )
        await asyncio.sleep(BURST_INTERVAL_S)


def _event(run: int, n: int) -> Callable[[StampFields], Event]:
    def build(st: StampFields) -> Event:
        return Event(run=run, n=n, session=st.session, seq=st.seq, replayed=st.replayed)

    return build


def _say_settled(job: str) -> Callable[[], None]:
    def say() -> None:
        print(f"S {job}", flush=True)

    return say


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
