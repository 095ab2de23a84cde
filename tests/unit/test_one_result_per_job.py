"""One job, one result, ever: a job id the kit ran is refused after a restart, and a kill
between queueing a result and clearing the job's journal entry never settles the job again.

Each "run" of the kit here is a JobRunner over the same state directory, as a restarted daemon
would open it; the broker is never reached, so what a run would publish stays in the outbox.
A crash is simulated by a journal whose ``end`` never happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd.clock import SystemClock
from gatewayd.config.job import parse_job
from gatewayd.config.kit import KitConfig, parse_kit_config
from gatewayd.contract import (
    CancelJobRequest,
    ErrorResponse,
    StartJobRequest,
    StartJobResponse,
    Topics,
)
from gatewayd.daemon.hubs import Hubs
from gatewayd.daemon.job_journal import JobJournal
from gatewayd.daemon.jobs import JobRunner
from gatewayd.daemon.metrics import Metrics
from gatewayd.daemon.mqtt_link import MqttLink
from gatewayd.daemon.outbox import Outbox
from gatewayd.daemon.publisher import Publisher
from gatewayd.survey.source import StoredSurveys
from gatewayd.survey.store import SurveyStore

ROOT = Path(__file__).resolve().parents[2]
TOPICS = Topics("kit-1")


class CrashingJournal(JobJournal):
    """A journal whose entries are never removed: the kit dies right after queueing."""

    def end(self, job_id: str) -> None:
        pass


@dataclass
class KitRun:
    runner: JobRunner
    outbox: Outbox
    journal: JobJournal
    publisher: Publisher

    def results(self, job_id: str) -> list[dict[str, Any]]:
        # What the kit queued is stored at the loop's next turn; a test looks at once.
        self.publisher.commit()
        topic = TOPICS.job_result(job_id)
        return [json.loads(e.payload) for e in self.outbox.pending(1000) if e.topic == topic]


def kit(tmp_path: Path) -> KitConfig:
    return parse_kit_config(
        {
            # No hub answers there: a job only runs until it is cancelled.
            "hub": {"name": "hub1", "port": str(tmp_path / "no-hub")},
            "mqtt": {"kit_id": "kit-1", "state_dir": str(tmp_path / "state")},
        }
    )


@contextlib.asynccontextmanager
async def kit_run(tmp_path: Path, *, crash_after_queueing: bool = False) -> AsyncIterator[KitRun]:
    """One run of the kit over ``tmp_path``'s state directory; a job still running at the end
    is stopped dead, as by a kill."""
    cfg = kit(tmp_path)
    assert cfg.mqtt is not None
    state = cfg.mqtt.state_dir
    state.mkdir(parents=True, exist_ok=True)
    clock = SystemClock()
    link = MqttLink(cfg.mqtt, state_topic=TOPICS.state)
    outbox = Outbox(state / "outbox.sqlite3", clock=clock)
    publisher = Publisher(outbox, link, clock)
    journal = (CrashingJournal if crash_after_queueing else JobJournal)(state / "jobs")
    hubs = Hubs(
        cfg.all_hubs,
        publisher=publisher,
        topics=TOPICS,
        job_on=lambda _hub: None,
        on_link_change=_nothing,
    )
    runner = JobRunner(
        kit=lambda: cfg,
        hubs=hubs,
        clock=clock,
        topics=TOPICS,
        publisher=publisher,
        journal=journal,
        ledger=outbox,
        metrics=Metrics(),
        surveys=lambda: StoredSurveys(SurveyStore(None), cfg.survey, clock),
        on_change=lambda: None,
    )
    try:
        yield KitRun(runner, outbox, journal, publisher)
    finally:
        tasks = [h.task for h in runner.running() if h.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outbox.close()


async def _nothing(_rt: object) -> None:
    return None


def start(job_id: str) -> StartJobRequest:
    doc = tomllib.loads((ROOT / "examples" / "jobs" / "dual-fuel.toml").read_text())
    doc["job_id"] = job_id
    return StartJobRequest(transaction=f"t-{job_id}", job=parse_job(doc))


async def run_until_cancelled(run: KitRun, job_id: str) -> None:
    """Start ``job_id``, cancel it, and wait until its result is queued."""
    assert isinstance(run.runner.start(start(job_id)), StartJobResponse)
    handle = next(h for h in run.runner.running() if h.job.job_id == job_id)
    run.runner.cancel(CancelJobRequest(transaction="c", job_id=job_id))
    assert handle.task is not None
    await asyncio.wait_for(handle.task, 30)


async def test_a_job_id_that_ran_is_refused_after_a_restart(tmp_path: Path) -> None:
    async with kit_run(tmp_path) as first:
        await run_until_cancelled(first, "J-1")
        assert [r["outcome"] for r in first.results("J-1")] == ["cancelled"]
    async with kit_run(tmp_path) as second:
        second.runner.settle_interrupted()
        answer = second.runner.start(start("J-1"))
        assert isinstance(answer, ErrorResponse)
        assert answer.error.code.value == "job_exists"
        assert "J-1" in answer.error.reason
        assert second.runner.count() == 0
        # Nothing replaced the retained result.
        assert [r["outcome"] for r in second.results("J-1")] == ["cancelled"]


async def test_a_kill_after_the_result_is_queued_settles_the_job_once(tmp_path: Path) -> None:
    async with kit_run(tmp_path, crash_after_queueing=True) as first:
        await run_until_cancelled(first, "J-1")
        assert list(first.journal.directory.glob("*.json"))  # the kill left the entry
    async with kit_run(tmp_path) as second:
        second.runner.settle_interrupted()
        # The result queued before the kill is the only one: no "failed" after it.
        assert [r["outcome"] for r in second.results("J-1")] == ["cancelled"]
        assert not list(second.journal.directory.glob("*.json"))  # and the entry is gone


async def test_a_kill_after_settling_an_interrupted_job_settles_it_once(tmp_path: Path) -> None:
    async with kit_run(tmp_path) as first:
        assert isinstance(first.runner.start(start("J-1")), StartJobResponse)
        # The kit dies mid-job: the entry stays, and the next run owes the job a result.
    async with kit_run(tmp_path, crash_after_queueing=True) as second:
        second.runner.settle_interrupted()
        assert [r["outcome"] for r in second.results("J-1")] == ["failed"]
    async with kit_run(tmp_path) as third:
        third.runner.settle_interrupted()
        assert [r["outcome"] for r in third.results("J-1")] == ["failed"]
        assert not list(third.journal.directory.glob("*.json"))
