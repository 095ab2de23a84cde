"""Event stamps: ``(session, seq)`` never repeats on a topic, across restarts, even when a run
creates events before (or without ever) reaching the broker."""

from __future__ import annotations

from pathlib import Path

from gatewayd.clock import SystemClock
from gatewayd.config.mqtt import MqttConfig
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import Outbox
from gatewayd.daemon.publisher import Publisher


def _run_offline(state_dir: Path, events: int) -> list[tuple[int, int]]:
    """One daemon run that never connects: the stamps of the events it creates."""
    link = MqttLink(MqttConfig(kit_id="k", state_dir=state_dir), state_topic="gatewayd/k/state")
    with Outbox(state_dir / "outbox.db", clock=SystemClock()) as box:
        publisher = Publisher(box, link, SystemClock())
        stamps = [publisher.stamp("gatewayd/k/hubs/h1/events") for _ in range(events)]
    return [(s.session, s.seq) for s in stamps]


def test_offline_runs_never_reuse_a_session(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    for _ in range(4):
        seen += _run_offline(tmp_path, events=3)
    assert len(set(seen)) == len(seen) == 12
    assert len({session for session, _ in seen}) == 4


def test_the_first_connection_keeps_the_session_its_offline_events_carry(
    tmp_path: Path,
) -> None:
    link = MqttLink(MqttConfig(kit_id="k", state_dir=tmp_path), state_topic="gatewayd/k/state")
    with Outbox(tmp_path / "outbox.db", clock=SystemClock()) as box:
        stamped = Publisher(box, link, SystemClock()).stamp("t").session
    # The number a connection would now go out with (the link reserves before connecting).
    assert link.sessions.reserve() == stamped
