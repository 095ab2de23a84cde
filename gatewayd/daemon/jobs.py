"""The daemon's jobs: one commissioning job per hub at a time, its steps and result out.

Verdict -> publications. A started job is written to the journal and the job ledger, runs
the engine on its hub, and ends with a result document (retained) and, for an abort, an
abort notice, both queued in one transaction that also marks the job settled in the
ledger; a job that crashes, or that a previous run of the kit left unfinished (and did not
settle), still gets a ``failed`` result, so no back office waits forever. A job id runs
once: the ledger remembers ids across restarts. A disk that refuses to record a job gets
its ``start_job`` a ``storage_error``, and the id stays usable. DCC notices reach the
running jobs they concern.

The engine's run, the request and response models and the surveys are imported where a job
starts or a request is answered, not with this module: the daemon reaches READY without them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from gatewayd.clock import Clock
from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Job
from gatewayd.config.kit import KitConfig
from gatewayd.contract import (
    AbortNotice,
    ErrorCode,
    StampFields,
    Topics,
    abort_notice,
    job_event_payload,
)
from gatewayd.daemon.hubs import HubRuntime, Hubs
from gatewayd.daemon.job_journal import JobJournal, JournalError
from gatewayd.daemon.metrics import Metrics
from gatewayd.daemon.outbox import Outbox, OutboxError
from gatewayd.daemon.publisher import Publisher
from gatewayd.engine.dcc import DccInput
from gatewayd.engine.meter_type import check_meter_type
from gatewayd.engine.outcomes import Failed, RunFacts
from gatewayd.engine.progress import Progress, Stage
from gatewayd.engine.result import ResultDocument, build_result
from gatewayd.engine.verdict import decide

if TYPE_CHECKING:
    from gatewayd.contract import (
        CancelJobRequest,
        CancelJobResponse,
        DccNoticeMessage,
        ErrorResponse,
        StartJobRequest,
        StartJobResponse,
    )
    from gatewayd.survey.source import StoredSurveys

__all__ = ["JobHandle", "JobRunner"]

_log = logging.getLogger(__name__)


@dataclass
class JobHandle:
    job: Job
    hub: str
    started_at: datetime
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    dcc: DccInput | None = None
    task: asyncio.Task[None] | None = None
    stage: Stage | None = None
    cancelled_by: str = "back_office"


class JobRunner:
    def __init__(
        self,
        *,
        kit: Callable[[], KitConfig],
        hubs: Hubs,
        clock: Clock,
        topics: Topics,
        publisher: Publisher,
        journal: JobJournal,
        ledger: Outbox,
        metrics: Metrics,
        surveys: Callable[[], StoredSurveys],
        on_change: Callable[[], None],
    ) -> None:
        # The kit is read at each use: a reload (SIGHUP) changes it for the jobs to come.
        self._kit = kit
        self._hubs = hubs
        self._clock = clock
        self._topics = topics
        self._publisher = publisher
        self._journal = journal
        self._ledger = ledger
        self._metrics = metrics
        self._surveys = surveys
        self._on_change = on_change
        self._running: dict[str, JobHandle] = {}  # by hub name
        self._results: dict[str, ResultDocument] = {}
        # Ids this run started or found settled; the ledger has every id of earlier runs.
        self._seen: set[str] = set()
        self._accepting = True

    # --- queries ---------------------------------------------------------------------------

    def job_on(self, hub: str) -> str | None:
        """The id of the job running on ``hub``, if one is."""
        handle = self._running.get(hub)
        return handle.job.job_id if handle is not None else None

    def running(self) -> Iterator[JobHandle]:
        """The running jobs, in the kit's hub order."""
        for name in self._hubs.names():
            handle = self._running.get(name)
            if handle is not None:
                yield handle

    def count(self) -> int:
        return len(self._running)

    def results(self) -> Mapping[str, ResultDocument]:
        """Every result this run of the kit published, by job id."""
        return self._results

    # --- requests --------------------------------------------------------------------------

    def start(self, req: StartJobRequest) -> StartJobResponse | ErrorResponse:
        from gatewayd.contract import ErrorResponse, StartJobResponse

        job = req.job
        names = ", ".join(self._hubs.names())
        if not self._accepting:
            return ErrorResponse.refusing(req, ErrorCode.HUB_BUSY, "the kit is shutting down")
        if req.hub is None and len(self._hubs) > 1:
            return ErrorResponse.refusing(
                req, ErrorCode.UNKNOWN_HUB, f"hub: this kit has several hubs ({names}); name one"
            )
        hub_name = req.hub or self._hubs.names()[0]
        rt = self._hubs.get(hub_name)
        if rt is None:
            return ErrorResponse.refusing(
                req, ErrorCode.UNKNOWN_HUB, f"hub: no hub named {hub_name!r} (this kit has {names})"
            )
        busy = self._running.get(hub_name)
        if busy is not None:
            return ErrorResponse.refusing(
                req,
                ErrorCode.HUB_BUSY,
                f"hub: {hub_name} is running job {busy.job.job_id}; cancel it or wait",
            )
        try:
            known = job.job_id in self._seen or self._ledger.job(job.job_id) is not None
        except OutboxError as exc:
            return ErrorResponse.refusing(req, ErrorCode.STORAGE_ERROR, f"storage: {exc}")
        if known:
            return ErrorResponse.refusing(
                req, ErrorCode.JOB_EXISTS, f"job.job_id: {job.job_id} already ran on this kit"
            )
        try:
            self._kit().timing(job.timing, source="job.timing")
        except ConfigError as exc:
            return ErrorResponse.refusing(req, ErrorCode.INVALID_REQUEST, str(exc))
        handle = JobHandle(job=job, hub=hub_name, started_at=self._clock.wall())
        handle.dcc = DccInput(job.job_id)
        refused = self._record_start(handle)
        if refused is not None:
            _log.warning("job refused, not recorded job=%s reason=%r", job.job_id, refused)
            return ErrorResponse.refusing(req, ErrorCode.STORAGE_ERROR, refused)
        self._seen.add(job.job_id)
        self._running[hub_name] = handle
        self._on_change()
        handle.task = asyncio.create_task(self._run(rt, handle), name=f"job {job.job_id}")
        _log.info("job started job=%s hub=%s", job.job_id, hub_name)
        return StartJobResponse(
            transaction=req.transaction,
            job_id=job.job_id,
            hub=hub_name,
            events_topic=self._topics.job_events(job.job_id),
            result_topic=self._topics.job_result(job.job_id),
        )

    def _record_start(self, handle: JobHandle) -> str | None:
        """Write the job to the journal and the ledger before it runs: None when both took
        it, else why not, with neither left holding it (the id stays usable)."""
        job_id = handle.job.job_id
        try:
            self._journal.begin(handle.job, handle.hub, handle.started_at)
        except JournalError as exc:
            return f"storage: {exc}"
        try:
            self._ledger.begin_job(job_id, handle.started_at)
        except OutboxError as exc:
            # Removing a file needs no free space, so this undo works on a full disk.
            self._journal.end(job_id)
            return f"storage: {exc}"
        return None

    def cancel(self, req: CancelJobRequest) -> CancelJobResponse | ErrorResponse:
        from gatewayd.contract import CancelJobResponse, ErrorResponse

        for handle in self.running():
            if handle.job.job_id == req.job_id:
                handle.cancelled_by = "back_office"
                handle.cancel.set()
                return CancelJobResponse(
                    transaction=req.transaction,
                    job_id=req.job_id,
                    result_topic=self._topics.job_result(req.job_id),
                )
        return ErrorResponse.refusing(
            req, ErrorCode.UNKNOWN_JOB, f"job_id: no job {req.job_id!r} is running on this kit"
        )

    def deliver_notice(self, notice: DccNoticeMessage) -> None:
        """Hand a DCC notice to every running job it concerns."""
        matched = False
        for handle in self.running():
            if handle.dcc is None:
                continue
            job = handle.job
            if notice.concerns(job.job_id, job.mpan, job.mprn):
                matched = True
                handle.dcc.deliver(notice.to_notice())
                _log.info("DCC notice delivered job=%s reference=%s", job.job_id, notice.reference)
        if not matched:
            _log.info("DCC notice concerns no running job reference=%s", notice.reference)

    # --- lifecycle -------------------------------------------------------------------------

    def settle_interrupted(self) -> None:
        """Jobs a previous run left unfinished get a ``failed`` result, so none waits forever;
        a job whose result that run had already queued keeps it, and only loses its entry."""
        for left in self._journal.interrupted():
            job_id = left.job.job_id
            self._seen.add(job_id)
            if self._settled_before(job_id):
                _log.info("job result queued before the stop, journal entry cleared job=%s", job_id)
                self._journal.end(job_id)
                continue
            _log.warning("job interrupted by a stop of the kit job=%s", job_id)
            self._publish_failed(
                left.job,
                left.hub,
                left.started_at,
                "the kit stopped while this job ran (power cut or crash); run the job again",
            )

    def _settled_before(self, job_id: str) -> bool:
        try:
            record = self._ledger.job(job_id)
        except OutboxError as exc:
            # Unknown: a second result (the back office keys results by job id) is better than
            # a job that never gets one.
            _log.warning(
                "job ledger unreadable, settling the job job=%s error=%r", job_id, str(exc)
            )
            return False
        return record is not None and record.settled

    async def stop(self, timeout_s: float) -> None:
        """Take no new job, and give the running ones ``timeout_s`` to record a result."""
        self._accepting = False
        running = list(self.running())
        for handle in running:
            handle.cancelled_by = "kit_shutdown"
            handle.cancel.set()
        tasks = [h.task for h in running if h.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    # --- one job ---------------------------------------------------------------------------

    async def _run(self, rt: HubRuntime, handle: JobHandle) -> None:
        from gatewayd.engine.commissioning import run_job

        job_id = handle.job.job_id
        events_topic = self._topics.job_events(job_id)

        def sink(p: Progress) -> None:
            handle.stage = p.stage
            if p.rssi_dbm is not None:
                rt.wan_rssi_dbm = p.rssi_dbm
            # "Connecting to the hub on <port>": the port's path stays off MQTT.
            public = replace(p, message=rt.public(p.message))
            self._publisher.emit(
                events_topic, lambda st: job_event_payload(public, hub=handle.hub, stamp=st)
            )

        try:
            try:
                run = await run_job(
                    handle.job,
                    self._kit(),
                    rt.client,
                    clock=self._clock,
                    dcc=handle.dcc,
                    cancel=handle.cancel,
                    cancelled_by=lambda: handle.cancelled_by,
                    sinks=[sink],
                    surveys=self._surveys(),
                )
            except Exception as exc:
                _log.exception("job crashed job=%s", job_id)
                reason = f"internal error: {exc}"
                self._publish_failed(handle.job, handle.hub, handle.started_at, reason)
                return
            self._metrics.record_job(run.facts, run.verdict)
            self._publish_result(run.result, handle.hub)
        finally:
            # Whatever became of the result, the hub is free for the next job.
            self._finished(handle)

    def _finished(self, handle: JobHandle) -> None:
        del self._running[handle.hub]
        self._on_change()

    def _publish_result(self, result: ResultDocument, hub: str) -> None:
        """Queue a job's result (and its abort notice) and settle the job, then forget that
        it was running."""
        result = self._public(result, hub)
        self._results[result.job_id] = result
        notices: list[tuple[str, Callable[[StampFields], AbortNotice]]] = []
        if result.abort is not None:
            notices.append(
                (
                    self._topics.aborts,
                    lambda st: _required(
                        abort_notice(result, hub=hub, topics=self._topics, stamp=st)
                    ),
                )
            )
        job_id = result.job_id
        self._publisher.emit_result(
            self._topics.job_result(job_id),
            result,
            settles=job_id,
            then=notices,
            # While the disk refuses the result, the entry stays: should the kit stop before
            # it is stored, the next start still owes the job a result.
            on_settled=lambda: self._journal.end(job_id),
        )
        _log.info("job finished job=%s outcome=%s", job_id, result.outcome.value)

    def _public(self, result: ResultDocument, hub: str) -> ResultDocument:
        """The result with its hub's serial device named by the hub's name (a failure to
        open the port quotes its path)."""
        rt = self._hubs.get(hub)
        failure = result.failure
        if rt is None or failure is None or rt.public(failure.reason) == failure.reason:
            return result
        public = failure.model_copy(update={"reason": rt.public(failure.reason)})
        return result.model_copy(update={"failure": public})

    def _publish_failed(self, job: Job, hub: str, started_at: datetime, reason: str) -> None:
        facts = RunFacts(
            job=job,
            meter_type=check_meter_type(job, self._kit().van.electricity_variants),
            ending=Failed(reason),
        )
        finished_at = max(self._clock.wall(), started_at)
        verdict = decide(facts)
        self._metrics.record_job(facts, verdict)
        self._publish_result(
            build_result(facts, verdict, started_at=started_at, finished_at=finished_at), hub
        )


def _required(value: AbortNotice | None) -> AbortNotice:
    assert value is not None
    return value
