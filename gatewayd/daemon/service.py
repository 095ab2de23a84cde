"""`gatewayd run`: the kit's daemon — jobs in over MQTT, every step and verdict out.

Wires the pieces: one serial link and hub client per configured hub, the
commissioning engine per job (one job per hub at a time, hubs concurrently),
the MQTT link, the durable outbox and its publisher. Requests arrive on
``request/<command>`` and are always answered on ``response/<command>``;
DCC notices are routed to the running jobs they concern. Hub events are
published whether or not a job runs. Results and events go through the
outbox, so a broker outage or a kill loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from gatewayd import __version__
from gatewayd.clock import Clock, ScaledClock, SystemClock
from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Job
from gatewayd.config.kit import HubPort, KitConfig, load_kit_config
from gatewayd.config.mqtt import MqttConfig
from gatewayd.config.reload import reload_kit_config
from gatewayd.contract import (
    MAX_REQUEST_BYTES,
    AbortNotice,
    Availability,
    CancelJobRequest,
    CancelJobResponse,
    Command,
    ErrorCode,
    ErrorDetail,
    ErrorResponse,
    HubEventMessage,
    HubPortDoc,
    HubStatusDoc,
    Info,
    NoticeTopic,
    OutboxDoc,
    Presence,
    RebirthRequest,
    RebirthResponse,
    Request,
    RequestTopic,
    Response,
    RunningJobDoc,
    StampFields,
    StartJobRequest,
    StartJobResponse,
    StatusRequest,
    StatusResponse,
    SurveyRequest,
    Topics,
    abort_notice,
    config_digest,
    hub_event_message,
    job_event_message,
    parse_dcc_notice,
    parse_request,
    state_payload,
    to_payload,
)
from gatewayd.daemon.job_journal import JobJournal
from gatewayd.daemon.metrics import HubReading, KitReading, Metrics
from gatewayd.daemon.metrics_server import MetricsServer, MetricsServerError
from gatewayd.daemon.mqtt_link import InboundMessage, MqttLink, MqttUnavailable
from gatewayd.daemon.outbox import Outbox, OutboxError
from gatewayd.daemon.publisher import Publisher
from gatewayd.daemon.sd_notify import Notifier
from gatewayd.daemon.survey_service import SurveyService
from gatewayd.engine.commissioning import run_job
from gatewayd.engine.dcc import DccInput
from gatewayd.engine.meter_type import check_meter_type
from gatewayd.engine.outcomes import Failed, RunFacts, enum_label
from gatewayd.engine.progress import Progress, Stage
from gatewayd.engine.result import ResultDocument, build_result
from gatewayd.engine.verdict import decide
from gatewayd_drivers.commshub.client import ClientEvent, HubClient, LinkLost, LinkUp
from gatewayd_drivers.commshub.messages import WanStateChanged
from gatewayd_drivers.serial_link import SerialSettings

__all__ = ["Daemon"]

_log = logging.getLogger(__name__)

# Real seconds a stopping daemon gives running jobs to record a result, and the outbox to
# drain, before it goes offline anyway (the outbox keeps the rest for the next start).
STOP_JOBS_TIMEOUT_S = 10.0
STOP_FLUSH_TIMEOUT_S = 10.0

CAPABILITIES = ["commissioning", "dcc_notices", "durable_outbox"]


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


@dataclass
class HubRuntime:
    port: HubPort
    client: HubClient
    job: JobHandle | None = None
    wan_state: str | None = None
    wan_rssi_dbm: int | None = None
    link_error: str | None = None


class Daemon:
    def __init__(
        self,
        kit: KitConfig,
        *,
        config_bytes: bytes,
        clock: Clock | None = None,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        if kit.mqtt is None:
            raise ValueError("gatewayd run needs an [mqtt] table in the kit config")
        self.kit = kit
        self.mqtt: MqttConfig = kit.mqtt
        self.clock = clock or (
            SystemClock() if kit.time_scale == 1 else ScaledClock(kit.time_scale)
        )
        self.digest = config_digest(config_bytes)
        self.topics = Topics(self.mqtt.kit_id, self.mqtt.prefix)
        self.hubs = {
            h.name: HubRuntime(
                h, HubClient(h.port, name=h.name, settings=SerialSettings(baudrate=h.baudrate))
            )
            for h in kit.all_hubs
        }
        try:
            self.mqtt.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(
                f"cannot create the state directory {self.mqtt.state_dir}: {exc.strerror}"
            ) from None
        self.outbox = Outbox(self.mqtt.state_dir / "outbox.sqlite3", clock=self.clock)
        self.journal = JobJournal(self.mqtt.state_dir / "jobs")
        self.link = MqttLink(
            self.mqtt,
            state_topic=self.topics.state,
            subscriptions=self.topics.subscriptions(),
            on_message=self._on_message,
            on_connected=self._on_connected,
            presence=state_payload,
        )
        self.publisher = Publisher(self.outbox, self.link, self.clock)
        self.surveys = SurveyService(kit, self.clock, self.topics, self.publisher, self._hub_client)
        self.results: dict[str, ResultDocument] = {}
        self.jobs_seen: set[str] = set()
        self.accepting = True
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.metrics = Metrics(read=self._reading)
        self.metrics_server: MetricsServer | None = None
        if kit.metrics.enabled:
            self.metrics_server = MetricsServer(
                self.metrics.registry,
                kit.metrics.host,
                kit.metrics.port,
                tls_cert=kit.metrics.tls_cert,
                tls_key=kit.metrics.tls_key,
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._status_changed = asyncio.Event()
        self.serving = asyncio.Event()  # set once READY: hubs started, link and metrics up

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop`` (SIGTERM/SIGINT), then stop cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if self.metrics_server is not None:
            await self.metrics_server.start()
        for rt in self.hubs.values():
            await rt.client.start()
            self._tasks.append(asyncio.create_task(self._forward_hub_events(rt)))
        self._settle_interrupted_jobs()
        self.publisher.start()
        self.link.start()
        _log.info(
            "gatewayd running kit_id=%s hubs=%s broker=%s:%d metrics=%s",
            self.mqtt.kit_id,
            ",".join(self.hubs),
            self.mqtt.host,
            self.mqtt.effective_port,
            self.metrics_server.url if self.metrics_server is not None else "off",
        )
        self.notifier.ready(self.status_line())
        self.notifier.start_watchdog()
        self.serving.set()
        self._tasks.append(asyncio.create_task(self._report_status()))
        await self._stop.wait()
        await self._shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the kit config and apply what can change live."""
        if self._stop.is_set():
            return
        self.notifier.reloading()
        try:
            if self.config_path is None:
                _log.warning("reload refused reason=%r", "the daemon was not started from a file")
                return
            outcome = reload_kit_config(self.kit, self.config_path)
            if outcome.kit is not None:
                self.kit = outcome.kit
                self.digest = config_digest(outcome.config_bytes)
                # Back offices read the running config's digest from the info birth.
                self._tasks.append(asyncio.create_task(self._publish_birth()))
        finally:
            self.notifier.ready(self.status_line())

    def status_line(self) -> str:
        """What the kit is doing, in a few words, for ``systemctl status``."""
        busy = [f"{rt.job.job.job_id} on {name}" for name, rt in self.hubs.items() if rt.job]
        doing = f"running {', '.join(busy)}" if busy else "idle"
        mqtt = "MQTT connected" if self.link.connected else "MQTT down"
        hubs_up = sum(1 for rt in self.hubs.values() if rt.client.connected)
        depth = self.outbox.depth()
        queued = f", {depth} queued" if depth else ""
        return f"{doing}; {mqtt}{queued}; hubs {hubs_up}/{len(self.hubs)} up"

    def _touch_status(self) -> None:
        self._status_changed.set()

    async def _report_status(self) -> None:
        """Send STATUS when it changes: at once on a job or link change, else every 5 s."""
        last = ""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._status_changed.wait()
            self._status_changed.clear()
            line = self.status_line()
            if line != last:
                self.notifier.status(line)
                last = line

    def _reading(self) -> KitReading:
        return KitReading(
            hubs=tuple(
                HubReading(name, rt.client.snapshot_stats(), rt.wan_rssi_dbm)
                for name, rt in self.hubs.items()
            ),
            mqtt_connected=self.link.connected,
            outbox_depth=self.outbox.depth(),
            outbox_oldest_age_s=self.outbox.oldest_age_s(),
            outbox_dropped={r.value: n for r, n in self.outbox.dropped_total.items()},
            jobs_running=sum(1 for rt in self.hubs.values() if rt.job is not None),
        )

    async def _shutdown(self) -> None:
        self.accepting = False
        self.notifier.stopping("stopping: ending running jobs and flushing the outbox")
        running = [rt.job for rt in self.hubs.values() if rt.job is not None]
        for handle in running:
            handle.cancelled_by = "kit_shutdown"
            handle.cancel.set()
        tasks = [h.task for h in running if h.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_JOBS_TIMEOUT_S)
        if not await self.publisher.flush(STOP_FLUSH_TIMEOUT_S):
            _log.warning("stopping with %d message(s) still queued", self.outbox.depth())
        await self.surveys.stop()
        await self.publisher.stop()
        await self.link.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rt in self.hubs.values():
            await rt.client.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.notifier.close()
        self.outbox.close()
        _log.info("gatewayd stopped")

    # --- connection birth ------------------------------------------------------------------

    async def _on_connected(self, session: int) -> None:
        self._touch_status()
        await self._publish_birth()
        self.publisher.wake()

    async def _publish_birth(self) -> None:
        info = Info(
            kit_id=self.mqtt.kit_id,
            session=self.link.session,
            ts=self.clock.wall(),
            version=__version__,
            config_digest=self.digest,
            hubs=[
                HubPortDoc(name=rt.port.name, port=rt.port.port, baudrate=rt.port.baudrate)
                for rt in self.hubs.values()
            ],
            requests=list(Command),
            capabilities=CAPABILITIES + (["rf_survey"] if self.surveys.available else []),
            max_request_bytes=MAX_REQUEST_BYTES,
            dcc_notice_topics=list(self.topics.dcc_notice_filters()),
        )
        await self._publish_now(self.topics.info, to_payload(info), retain=True)
        for rt in self.hubs.values():
            await self._publish_availability(rt)

    async def _publish_availability(self, rt: HubRuntime) -> None:
        connected = rt.client.connected
        doc = Availability(
            hub=rt.port.name,
            state=Presence.ONLINE if connected else Presence.OFFLINE,
            session=self.link.session,
            ts=self.clock.wall(),
            reason=None if connected else (rt.link_error or rt.client.last_link_error),
        )
        await self._publish_now(
            self.topics.hub_availability(rt.port.name), to_payload(doc), retain=True
        )

    async def _publish_now(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Current-value messages: sent now if connected, else the next connect sends them."""
        with contextlib.suppress(MqttUnavailable):
            await self.link.publish(topic, payload, qos=1, retain=retain)

    # --- hub events --------------------------------------------------------------------

    async def _forward_hub_events(self, rt: HubRuntime) -> None:
        name = rt.port.name
        with rt.client.events() as events:
            async for event in events:
                self._note_hub_state(rt, event)
                job_id = rt.job.job.job_id if rt.job is not None else None
                self._emit_hub_event(name, event, job_id)
                if isinstance(event, LinkLost | LinkUp):
                    self._touch_status()
                    await self._publish_availability(rt)

    def _emit_hub_event(self, hub: str, event: ClientEvent, job_id: str | None) -> None:
        def build(stamp: StampFields) -> HubEventMessage:
            return hub_event_message(event, hub=hub, job_id=job_id, stamp=stamp)

        self.publisher.emit(self.topics.hub_events(hub), build)

    def _note_hub_state(self, rt: HubRuntime, event: ClientEvent) -> None:
        if isinstance(event, WanStateChanged):
            rt.wan_state = enum_label(event.status.state)
            if event.status.rssi_dbm is not None:
                rt.wan_rssi_dbm = event.status.rssi_dbm
        elif isinstance(event, LinkLost):
            rt.link_error = event.reason
        elif isinstance(event, LinkUp):
            rt.link_error = None

    # --- messages in ---------------------------------------------------------------------

    async def _on_message(self, message: InboundMessage) -> None:
        topic, raw = message.topic, message.payload
        where = self.topics.match(topic)
        if isinstance(where, RequestTopic):
            response = self._handle_request(where.command, raw)
            await self._publish_now(self.topics.response(where.command), to_payload(response))
        elif isinstance(where, NoticeTopic):
            self._handle_dcc_notice(raw, topic)

    def _handle_request(self, command: str, raw: bytes) -> Response:
        request: Request | ErrorResponse = parse_request(command, raw)
        if isinstance(request, ErrorResponse):
            _log.warning("request refused command=%s reason=%r", command, request.error.reason)
            return request
        match request:
            case StartJobRequest():
                return self._start_job(request)
            case CancelJobRequest():
                return self._cancel_job(request)
            case StatusRequest():
                return self._status(request)
            case RebirthRequest():
                return self._rebirth(request)
            case SurveyRequest():
                return self.surveys.handle(request)
        return ErrorResponse(  # pragma: no cover - parse_request knows the commands
            transaction=None,
            error=ErrorDetail.of(ErrorCode.UNKNOWN_COMMAND, f"unknown command {command!r}"),
        )

    def _start_job(self, req: StartJobRequest) -> StartJobResponse | ErrorResponse:
        job = req.job
        if not self.accepting:
            return ErrorResponse.refusing(req, ErrorCode.HUB_BUSY, "the kit is shutting down")
        if req.hub is None and len(self.hubs) > 1:
            names = ", ".join(self.hubs)
            return ErrorResponse.refusing(
                req, ErrorCode.UNKNOWN_HUB, f"hub: this kit has several hubs ({names}); name one"
            )
        hub_name = req.hub or next(iter(self.hubs))
        rt = self.hubs.get(hub_name)
        if rt is None:
            names = ", ".join(self.hubs)
            return ErrorResponse.refusing(
                req, ErrorCode.UNKNOWN_HUB, f"hub: no hub named {hub_name!r} (this kit has {names})"
            )
        if rt.job is not None:
            return ErrorResponse.refusing(
                req,
                ErrorCode.HUB_BUSY,
                f"hub: {hub_name} is running job {rt.job.job.job_id}; cancel it or wait",
            )
        if job.job_id in self.jobs_seen:
            return ErrorResponse.refusing(
                req, ErrorCode.JOB_EXISTS, f"job.job_id: {job.job_id} already ran on this kit"
            )
        try:
            self.kit.timing(job.timing, source="job.timing")
        except ConfigError as exc:
            return ErrorResponse.refusing(req, ErrorCode.INVALID_REQUEST, str(exc))
        handle = JobHandle(job=job, hub=hub_name, started_at=self.clock.wall())
        handle.dcc = DccInput(job.job_id)
        self.jobs_seen.add(job.job_id)
        self.journal.begin(job, hub_name, handle.started_at)
        rt.job = handle
        self._touch_status()
        handle.task = asyncio.create_task(self._run_job(rt, handle), name=f"job {job.job_id}")
        _log.info("job started job=%s hub=%s", job.job_id, hub_name)
        return StartJobResponse(
            transaction=req.transaction,
            job_id=job.job_id,
            hub=hub_name,
            events_topic=self.topics.job_events(job.job_id),
            result_topic=self.topics.job_result(job.job_id),
        )

    async def _run_job(self, rt: HubRuntime, handle: JobHandle) -> None:
        job_id = handle.job.job_id
        events_topic = self.topics.job_events(job_id)

        def sink(p: Progress) -> None:
            handle.stage = p.stage
            if p.rssi_dbm is not None:
                rt.wan_rssi_dbm = p.rssi_dbm
            self.publisher.emit(
                events_topic, lambda st: job_event_message(p, hub=handle.hub, stamp=st)
            )

        try:
            run = await run_job(
                handle.job,
                self.kit,
                rt.client,
                clock=self.clock,
                dcc=handle.dcc,
                cancel=handle.cancel,
                cancelled_by=lambda: handle.cancelled_by,
                sinks=[sink],
                surveys=self.surveys.source(),
            )
        except Exception as exc:
            _log.exception("job crashed job=%s", job_id)
            reason = f"internal error: {exc}"
            self._publish_failed(handle.job, handle.hub, handle.started_at, reason)
            rt.job = None
            self._touch_status()
            return
        self.metrics.record_job(run.facts, run.verdict)
        self._publish_result(run.result, handle.hub)
        rt.job = None
        self._touch_status()

    def _publish_result(self, result: ResultDocument, hub: str) -> None:
        """Queue a job's result (and its abort notice), then forget that the job was running."""
        self.results[result.job_id] = result
        self.publisher.emit_result(self.topics.job_result(result.job_id), result)
        if result.abort is not None:
            self.publisher.emit(
                self.topics.aborts,
                lambda st: _required(abort_notice(result, hub=hub, topics=self.topics, stamp=st)),
            )
        self.journal.end(result.job_id)
        _log.info("job finished job=%s outcome=%s", result.job_id, result.outcome.value)

    def _publish_failed(self, job: Job, hub: str, started_at: datetime, reason: str) -> None:
        facts = RunFacts(
            job=job,
            meter_type=check_meter_type(job, self.kit.van.electricity_variants),
            ending=Failed(reason),
        )
        finished_at = max(self.clock.wall(), started_at)
        verdict = decide(facts)
        self.metrics.record_job(facts, verdict)
        self._publish_result(
            build_result(facts, verdict, started_at=started_at, finished_at=finished_at), hub
        )

    def _settle_interrupted_jobs(self) -> None:
        """Jobs a previous run left unfinished get a ``failed`` result, so none waits forever."""
        for left in self.journal.interrupted():
            self.jobs_seen.add(left.job.job_id)
            _log.warning("job interrupted by a stop of the kit job=%s", left.job.job_id)
            self._publish_failed(
                left.job,
                left.hub,
                left.started_at,
                "the kit stopped while this job ran (power cut or crash); run the job again",
            )

    def _cancel_job(self, req: CancelJobRequest) -> CancelJobResponse | ErrorResponse:
        for rt in self.hubs.values():
            if rt.job is not None and rt.job.job.job_id == req.job_id:
                rt.job.cancelled_by = "back_office"
                rt.job.cancel.set()
                return CancelJobResponse(
                    transaction=req.transaction,
                    job_id=req.job_id,
                    result_topic=self.topics.job_result(req.job_id),
                )
        return ErrorResponse.refusing(
            req, ErrorCode.UNKNOWN_JOB, f"job_id: no job {req.job_id!r} is running on this kit"
        )

    def _status(self, req: StatusRequest) -> StatusResponse:
        oldest_age = self.outbox.oldest_age_s()
        depth = self.outbox.depth()
        return StatusResponse(
            transaction=req.transaction,
            session=self.link.session,
            version=__version__,
            hubs=[
                HubStatusDoc(
                    name=name,
                    availability=Presence.ONLINE if rt.client.connected else Presence.OFFLINE,
                    wan_state=rt.wan_state,
                    job_id=rt.job.job.job_id if rt.job is not None else None,
                )
                for name, rt in self.hubs.items()
            ],
            jobs=[
                RunningJobDoc(
                    job_id=rt.job.job.job_id,
                    hub=name,
                    stage=rt.job.stage,
                    started_at=rt.job.started_at,
                )
                for name, rt in self.hubs.items()
                if rt.job is not None
            ],
            outbox=OutboxDoc(
                depth=depth,
                oldest_created_at=(
                    self.clock.wall() - timedelta(seconds=oldest_age) if depth else None
                ),
            ),
        )

    def _hub_client(self, name: str | None) -> HubClient | None:
        return _first_or_named(self.hubs, name)

    def _rebirth(self, req: RebirthRequest) -> RebirthResponse:
        self._tasks.append(asyncio.create_task(self._republish()))
        return RebirthResponse(transaction=req.transaction, session=self.link.session)

    async def _republish(self) -> None:
        await self._publish_now(
            self.topics.state, state_payload("online", self.link.session), retain=True
        )
        await self._publish_birth()
        for job_id, result in self.results.items():
            await self._publish_now(self.topics.job_result(job_id), to_payload(result), retain=True)

    def _handle_dcc_notice(self, raw: bytes, topic: str) -> None:
        notice = parse_dcc_notice(raw)
        if isinstance(notice, ErrorDetail):
            _log.warning("DCC notice refused topic=%s reason=%r", topic, notice.reason)
            return
        matched = False
        for rt in self.hubs.values():
            handle = rt.job
            if handle is None or handle.dcc is None:
                continue
            job = handle.job
            if notice.concerns(job.job_id, job.mpan, job.mprn):
                matched = True
                handle.dcc.deliver(notice.to_notice())
                _log.info("DCC notice delivered job=%s reference=%s", job.job_id, notice.reference)
        if not matched:
            _log.info("DCC notice concerns no running job reference=%s", notice.reference)


def _first_or_named(hubs: dict[str, HubRuntime], name: str | None) -> HubClient | None:
    if name is None:
        return next(iter(hubs.values())).client if hubs else None
    rt = hubs.get(name)
    return rt.client if rt is not None else None


def _required(value: AbortNotice | None) -> AbortNotice:
    assert value is not None
    return value


async def run_daemon(kit: KitConfig, config_bytes: bytes, config_path: Path | None = None) -> int:
    daemon = Daemon(kit, config_bytes=config_bytes, config_path=config_path)
    await daemon.run()
    return 0


def main_run(config_path: Path, *, log_level_forced: bool = False) -> int:
    """`gatewayd run --config KIT`: exit 0 on a clean stop, 2 for a bad config, 1 otherwise."""
    try:
        kit = load_kit_config(config_path)
        config_bytes = config_path.read_bytes()
    except ConfigError as exc:
        print(f"gatewayd run: invalid kit config:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gatewayd run: cannot read {config_path}: {exc.strerror}", file=sys.stderr)
        return 2
    if kit.mqtt is None:
        print(
            f"gatewayd run: {config_path}: mqtt: required: an [mqtt] table with at least kit_id",
            file=sys.stderr,
        )
        return 2
    if not log_level_forced:
        logging.getLogger().setLevel(kit.log.level.number)
    try:
        return asyncio.run(run_daemon(kit, config_bytes, config_path))
    except (OutboxError, MetricsServerError) as exc:
        print(f"gatewayd run: {exc}", file=sys.stderr)
        return 1
