"""The figures of one chaos run, counted from what the back office received and the hubs sent.

- **Results**: per started job, the distinct result documents (identical redeliveries of the
  retained result are one); exactly one is right, none is missing, two are a conflict.
- **Job events lost**: per job topic (and ``aborts``) and session, ``seq`` must run 1..n with
  no hole. An event lost before it was numbered leaves no hole, so the ends are checked too:
  every job must have its first events (stage ``meter_type`` or ``hub``) and, unless a kill
  settled it, its ``verdict`` event, and an aborted job its abort notice.
- **Hub events lost**: every event a hub sent and the kit acknowledged on the serial line
  must be published. Events are matched by content per hub (the envelope is the kit's own);
  those acknowledged in the last moment before a SIGKILL may die with the process, and are
  counted apart. Events a hub raised while its cable was out, while no daemon ran or while
  it was silent were never acknowledged, and do not count (the spec lets them go).
- **Duplicates**: the same event again with the same ``event_id`` is a redelivery (allowed);
  the same event with a new ``event_id`` (a hub event published more often than the hub
  sent it, or a ``(session, seq)`` given to two events) is a duplicate (never allowed).
- **Wrong verdicts**: a result outside what ``verdicts.allowed_verdicts`` allows.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gatewayd.contract.convert import hub_event_body
from gatewayd_drivers.commshub.messages import decode_event
from tests.chaos.backoffice import Received
from tests.chaos.dispatch import JobRecord
from tests.chaos.hubs import Slot
from tests.chaos.verdicts import allowed_verdicts, verdict_of

# A broker may have acknowledged an event this long before a SIGKILL without having saved it.
BROKER_SAVE_S = 1.0
# An event the kit acknowledged this shortly before it was SIGKILLed may not be on disk yet.
KILL_WINDOW_S = 1.0
INTERRUPTED = "stopped while this job ran"  # the failure reason of a job a kill cut short
# A job's first events: the meter type check (electricity), else the hub's identity.
FIRST_STAGES = frozenset({"meter_type", "hub"})
KIT_OWN_KINDS = frozenset({"link_lost", "link_up", "hub_silent"})  # hub events the kit makes itself


@dataclass
class Figures:
    run: str
    jobs_started: int = 0
    jobs_not_started: int = 0
    results_ok: int = 0  # jobs with exactly one distinct result
    results_missing: int = 0
    results_conflicting: int = 0  # jobs with two or more distinct results
    job_events: int = 0
    job_events_lost: int = 0
    hub_events: int = 0  # acknowledged by the kit on the serial line
    hub_events_lost: int = 0  # while the daemon ran
    hub_events_lost_to_kills: int = 0  # acknowledged just before a SIGKILL: allowed
    job_events_lost_to_broker_kills: int = 0  # acknowledged by a broker then SIGKILLed: apart
    duplicates: int = 0  # same event with a new event_id
    redeliveries: int = 0  # same event_id again: allowed
    wrong_verdicts: int = 0
    failed_allowed: int = 0  # jobs cut short that ended failed, as allowed
    seconds: float = 0.0
    chaos: dict[str, float] = field(default_factory=dict)  # what was done, for the table
    skipped: str | None = None  # why the run could not be made here
    problems: list[str] = field(default_factory=list, repr=False)  # one line per fault

    @property
    def holds(self) -> bool:
        """Every invariant of the suite holds for this run."""
        return (
            self.jobs_not_started == 0
            and self.results_missing == 0
            and self.results_conflicting == 0
            and self.job_events_lost == 0
            and self.hub_events_lost == 0
            and self.duplicates == 0
            and self.wrong_verdicts == 0
        )


def count(
    figures: Figures,
    *,
    base: str,
    received: list[Received],
    records: list[JobRecord],
    slots: list[Slot],
    kills: list[float],
    end: float,
    broker_kills: Sequence[float] = (),
) -> Figures:
    """Fill ``figures`` from the run's records; ``end`` is the loop time the run ended."""
    by_topic: dict[str, list[Received]] = defaultdict(list)
    for seen in received:
        by_topic[seen.topic].append(seen)
    _results(figures, base, by_topic, records, slots, kills, end)
    _job_events(figures, base, by_topic, records, list(broker_kills))
    for slot in slots:
        _hub_events(figures, slot, by_topic.get(f"{base}/hubs/{slot.name}/events", []), kills)
    return figures


def _results(
    figures: Figures,
    base: str,
    by_topic: dict[str, list[Received]],
    records: list[JobRecord],
    slots: list[Slot],
    kills: list[float],
    end: float,
) -> None:
    slot_of = {slot.name: slot for slot in slots}
    for record in records:
        if record.accepted is None:
            figures.jobs_not_started += 1
            figures.problems.append(
                f"{record.job_id}: never taken by the kit (answers: {', '.join(record.answers)})"
            )
            continue
        figures.jobs_started += 1
        docs = _distinct(by_topic.get(f"{base}/jobs/{record.job_id}/result", []))
        if not docs:
            figures.results_missing += 1
            figures.problems.append(f"{record.job_id}: no result")
            continue
        if len(docs) > 1:
            figures.results_conflicting += 1
            shown = ", ".join(verdict_of(d) for d in docs)
            figures.problems.append(f"{record.job_id}: {len(docs)} distinct results ({shown})")
        else:
            figures.results_ok += 1
        allowed = allowed_verdicts(record, slot_of[record.hub], kills, end)
        verdicts = {verdict_of(doc) for doc in docs}
        wrong = verdicts - allowed.verdicts
        if wrong:
            figures.wrong_verdicts += 1
            cut = f", cut short by {', '.join(allowed.why)}" if allowed.why else ""
            figures.problems.append(
                f"{record.job_id} on {record.hub} ({record.site.name}{cut}): "
                f"{', '.join(sorted(wrong))}, expected {' or '.join(sorted(allowed.verdicts))}"
            )
        elif "failed" in verdicts and allowed.why:
            figures.failed_allowed += 1


def _distinct(seen: list[Received]) -> list[dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for r in seen:
        if isinstance(r.body, dict):  # an empty payload only clears a retained topic
            docs.setdefault(json.dumps(r.body, sort_keys=True), r.body)
    return list(docs.values())


def _job_events(
    figures: Figures,
    base: str,
    by_topic: dict[str, list[Received]],
    records: list[JobRecord],
    broker_kills: list[float],
) -> None:
    topics = [f"{base}/jobs/{r.job_id}/events" for r in records if r.accepted] + [f"{base}/aborts"]
    for topic in topics:
        seen = by_topic.get(topic, [])
        first_seen = _events(figures, topic, seen)
        figures.job_events += len(first_seen)
        figures.job_events_lost += _holes(figures, topic, first_seen, seen, broker_kills)
    aborted = {e["job_id"] for e in _bodies(by_topic.get(f"{base}/aborts", []))}
    for record in records:
        if not record.accepted:
            continue
        docs = _distinct(by_topic.get(f"{base}/jobs/{record.job_id}/result", []))
        events = _bodies(by_topic.get(f"{base}/jobs/{record.job_id}/events", []))
        interrupted = any(
            INTERRUPTED in str((doc.get("failure") or {}).get("reason", "")) for doc in docs
        )
        if not interrupted and not any(e.get("stage") in FIRST_STAGES for e in events):
            # A loss before an event was numbered leaves no hole: the first one is known.
            figures.job_events_lost += 1
            figures.problems.append(f"{record.job_id}: its first event never arrived")
        for doc in docs:
            failure = doc.get("failure") or {}
            if INTERRUPTED in str(failure.get("reason", "")):
                continue  # settled by the next daemon: no verdict event is made for it
            if not any(e.get("kind") == "verdict" for e in events):
                figures.job_events_lost += 1
                figures.problems.append(f"{record.job_id}: its verdict event never arrived")
            if doc.get("outcome") == "aborted" and record.job_id not in aborted:
                figures.job_events_lost += 1
                figures.problems.append(f"{record.job_id}: its abort notice never arrived")


def _bodies(seen: list[Received]) -> list[dict[str, Any]]:
    return [r.body for r in seen if isinstance(r.body, dict)]


def _events(figures: Figures, topic: str, seen: list[Received]) -> dict[str, dict[str, Any]]:
    """The events on ``topic`` by event_id, first arrival kept; counts the redeliveries."""
    first: dict[str, dict[str, Any]] = {}
    for body in _bodies(seen):
        event_id = str(body.get("event_id"))
        if event_id in first:
            figures.redeliveries += 1
        else:
            first[event_id] = body
    return first


def _holes(
    figures: Figures,
    topic: str,
    events: dict[str, dict[str, Any]],
    seen: list[Received],
    broker_kills: list[float],
) -> int:
    """Events missing from ``topic``: per session, numbers below the highest never seen.

    A hole whose neighbours arrived on either side of a broker SIGKILL is counted apart: the
    broker acknowledged the event to the kit, then died before it saved it.
    """
    arrived: dict[tuple[int, int], float] = {}
    for r in seen:
        if isinstance(r.body, dict) and "session" in r.body and "seq" in r.body:
            key = (int(r.body["session"]), int(r.body["seq"]))
            arrived.setdefault(key, r.at)
    by_session: dict[int, dict[int, str]] = defaultdict(dict)
    for event_id, body in events.items():
        seqs = by_session[int(body["session"])]
        seq = int(body["seq"])
        if seq in seqs and seqs[seq] != event_id:
            figures.duplicates += 1
            figures.problems.append(f"{topic}: session {body['session']} seq {seq} given twice")
        seqs[seq] = event_id
    lost = 0
    for session, seqs in by_session.items():
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
        kit_lost = []
        for seq in missing:
            before = max((arrived[(session, s)] for s in seqs if s < seq), default=None)
            after = min((arrived[(session, s)] for s in seqs if s > seq), default=None)
            if (
                before is not None
                and after is not None
                and any(before - BROKER_SAVE_S <= k <= after for k in broker_kills)
            ):
                figures.job_events_lost_to_broker_kills += 1
            else:
                kit_lost.append(seq)
        if kit_lost:
            lost += len(kit_lost)
            figures.problems.append(f"{topic}: session {session} lacks seq {_ranges(kit_lost)}")
    return lost


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def _hub_events(figures: Figures, slot: Slot, seen: list[Received], kills: list[float]) -> None:
    published: Counter[str] = Counter()
    first = _events(figures, f"hubs/{slot.name}/events", seen)
    for body in first.values():
        event = body.get("event") or {}
        if event.get("kind") not in KIT_OWN_KINDS:
            published[_signature(event)] += 1
    sent: Counter[str] = Counter()
    acked: Counter[str] = Counter()
    near_kill: Counter[str] = Counter()
    for sim, _gone in slot.sims:
        for event in sim.events_sent:
            signature = _signature(
                hub_event_body(decode_event(event.cmd, event.payload)).model_dump(mode="json")
            )
            sent[signature] += 1
            if event.acked_at is None:
                continue
            acked[signature] += 1
            if any(k - KILL_WINDOW_S <= event.acked_at <= k for k in kills):
                near_kill[signature] += 1
    figures.hub_events += sum(acked.values())
    for signature, n in acked.items():
        missing = max(0, n - published[signature])
        if not missing:
            continue
        to_kills = min(missing, near_kill[signature])
        figures.hub_events_lost_to_kills += to_kills
        if missing > to_kills:
            figures.hub_events_lost += missing - to_kills
            figures.problems.append(
                f"{slot.name}: {missing - to_kills} of {n} acknowledged {signature} never published"
            )
    for signature, n in published.items():
        if n > sent[signature]:
            figures.duplicates += n - sent[signature]
            figures.problems.append(
                f"{slot.name}: {signature} published {n} times under distinct ids, "
                f"the hub sent it {sent[signature]}"
            )


def _signature(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)
