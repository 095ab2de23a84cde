"""`gatewayd run`: the kit's daemon — jobs in over MQTT, every step and verdict out.

Wires the parts and runs their lifecycle: the hubs and their events (``hubs``), the jobs
(``jobs``), the kit's birth (``birth``), requests and DCC notices in (``request_handler``),
what the kit is doing (``status``), over one MQTT link, the durable outbox and its
publisher, the metrics endpoint and sd_notify. Results and events go through the outbox,
so a broker outage or a kill loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from gatewayd.clock import Clock, ScaledClock, SystemClock
from gatewayd.config.errors import ConfigError
from gatewayd.config.kit import KitConfig, load_kit_config
from gatewayd.config.mqtt import MqttConfig, SecretError
from gatewayd.config.reload import reload_kit_config
from gatewayd.contract import Topics, config_digest, state_payload
from gatewayd.daemon.birth import Birth
from gatewayd.daemon.fd_limit import raise_open_file_limit
from gatewayd.daemon.hubs import HubRuntime, Hubs
from gatewayd.daemon.job_journal import JobJournal
from gatewayd.daemon.jobs import JobRunner
from gatewayd.daemon.metrics import Metrics
from gatewayd.daemon.metrics_server import MetricsServer, MetricsServerError
from gatewayd.daemon.mqtt_link import InboundMessage, MqttLink
from gatewayd.daemon.outbox import Outbox, OutboxError
from gatewayd.daemon.publisher import Publisher
from gatewayd.daemon.request_handler import RequestHandler
from gatewayd.daemon.sd_notify import Notifier
from gatewayd.daemon.status import KitStatus, StatusReporter
from gatewayd.daemon.supervisor import Supervisor, Task
from gatewayd.daemon.survey_service import SurveyService
from gatewayd.private_files import make_private_dir, tighten_tree

__all__ = ["Daemon", "log_weak_settings", "main_run"]

_log = logging.getLogger(__name__)

# Real seconds a stopping daemon gives running jobs to record a result, and the outbox to
# drain, before it goes offline anyway (the outbox keeps the rest for the next start).
STOP_JOBS_TIMEOUT_S = 10.0
STOP_FLUSH_TIMEOUT_S = 10.0


def _make_state_private(state_dir: Path) -> None:
    """What an older version (or a umask of 0022) left readable by other users under the
    state directory is made private: the journal holds install codes and MPANs. Said once,
    not per file."""
    done = tighten_tree(state_dir)
    if done.changed:
        _log.warning(
            "state files other users could read made private dir=%s count=%d",
            state_dir,
            len(done.changed),
        )
    if done.failed:
        path, error = done.failed[0]
        _log.error(
            "state files other users may read could not be made private dir=%s count=%d "
            "file=%s error=%r",
            state_dir,
            len(done.failed),
            path,
            error,
        )


def log_weak_settings(mqtt: MqttConfig, source: str) -> None:
    """One WARNING line per weak setting of ``[mqtt]``, so that a kit never runs one unseen."""
    for weak in mqtt.weak_settings():
        _log.warning(
            "weak setting file=%s key=%s problem=%r why=%r instead=%r",
            source,
            weak.key,
            weak.problem,
            weak.why,
            weak.instead,
        )


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
        mqtt: MqttConfig = kit.mqtt
        self._mqtt = mqtt
        self._kit = kit
        self._digest = config_digest(config_bytes)
        self._config_path = config_path
        clock = clock or (SystemClock() if kit.time_scale == 1 else ScaledClock(kit.time_scale))
        topics = Topics(mqtt.kit_id, mqtt.prefix)
        try:
            make_private_dir(mqtt.state_dir)
        except OSError as exc:
            raise OutboxError(
                f"cannot create the state directory {mqtt.state_dir}: {exc.strerror}"
            ) from None
        _make_state_private(mqtt.state_dir)
        self._outbox = Outbox(mqtt.state_dir / "outbox.sqlite3", clock=clock)
        self._link = MqttLink(
            mqtt,
            state_topic=topics.state,
            subscriptions=topics.subscriptions(),
            on_message=self._on_message,
            on_connected=self._on_connected,
            presence=state_payload,
        )
        self._publisher = Publisher(self._outbox, self._link, clock)
        self._metrics = Metrics(read=lambda: self._status.reading())
        self._supervisor = Supervisor(on_failure=self._metrics.count_task_failure)
        self._notifier = notifier or Notifier()
        self._reporter = StatusReporter(self.status_line, self._notifier)
        # The hubs name the job running on them, and the jobs run on the hubs: each part
        # reaches the other through a callable, bound here.
        self._hubs = Hubs(
            kit.all_hubs,
            publisher=self._publisher,
            topics=topics,
            job_on=lambda hub: self._jobs.job_on(hub),
            on_link_change=self._on_hub_link_change,
        )
        self._surveys = SurveyService(kit, clock, topics, self._publisher, self._hubs.client)
        self._jobs = JobRunner(
            kit=lambda: self._kit,
            hubs=self._hubs,
            clock=clock,
            topics=topics,
            publisher=self._publisher,
            journal=JobJournal(mqtt.state_dir / "jobs"),
            ledger=self._outbox,
            metrics=self._metrics,
            surveys=self._surveys.source,
            on_change=self._reporter.touch,
        )
        self._status = KitStatus(
            hubs=self._hubs,
            jobs=self._jobs,
            link=self._link,
            outbox=self._outbox,
            publisher=self._publisher,
            clock=clock,
        )
        self._birth = Birth(
            kit_id=mqtt.kit_id,
            link=self._link,
            clock=clock,
            topics=topics,
            hubs=self._hubs,
            digest=lambda: self._digest,
            rf_survey=self._surveys.available,
            results=self._jobs.results,
        )
        self._requests = RequestHandler(
            topics=topics,
            link=self._link,
            jobs=self._jobs,
            surveys=self._surveys,
            status=self._status,
            birth=self._birth,
        )
        self.metrics_server: MetricsServer | None = None
        if kit.metrics.enabled:
            self.metrics_server = MetricsServer(
                self._metrics.registry,
                kit.metrics.host,
                kit.metrics.port,
                tls_cert=kit.metrics.tls_cert,
                tls_key=kit.metrics.tls_key,
            )
        self._stop = asyncio.Event()
        self._reporter_task: asyncio.Task[None] | None = None
        self.serving = asyncio.Event()  # set once READY: hubs started, link and metrics up

    # --- queries -------------------------------------------------------------------------

    def status_line(self) -> str:
        """What the kit is doing, in a few words, for ``systemctl status``."""
        return self._status.line()

    def queued(self) -> int:
        """Messages waiting in the outbox for the broker."""
        return self._status.queued()

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until ``request_stop`` (SIGTERM/SIGINT), then stop cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        log_weak_settings(
            self._mqtt, str(self._config_path) if self._config_path is not None else "<kit config>"
        )
        if self.metrics_server is not None:
            await self.metrics_server.start()
        spawn = self._supervisor.spawn
        await self._hubs.start(spawn)
        self._jobs.settle_interrupted()
        self._publisher.start(spawn)
        self._link.start(spawn)
        _log.info(
            "gatewayd running kit_id=%s hubs=%s broker=%s:%d metrics=%s",
            self._mqtt.kit_id,
            ",".join(self._hubs.names()),
            self._mqtt.host,
            self._mqtt.effective_port,
            self.metrics_server.url if self.metrics_server is not None else "off",
        )
        self._notifier.ready(self.status_line())
        self._notifier.start_watchdog()
        self.serving.set()
        self._reporter_task = spawn(Task.STATUS_REPORTER, self._reporter.run)
        await self._stop.wait()
        await self._shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        """SIGHUP: re-read the kit config and apply what can change live."""
        if self._stop.is_set():
            return
        self._notifier.reloading()
        try:
            if self._config_path is None:
                _log.warning("reload refused reason=%r", "the daemon was not started from a file")
                return
            outcome = reload_kit_config(self._kit, self._config_path)
            if outcome.kit is not None:
                self._kit = outcome.kit
                self._digest = config_digest(outcome.config_bytes)
                # Back offices read the running config's digest from the info birth.
                self._birth.publish_soon()
        finally:
            self._notifier.ready(self.status_line())

    async def _shutdown(self) -> None:
        self._notifier.stopping("stopping: ending running jobs and flushing the outbox")
        await self._jobs.stop(STOP_JOBS_TIMEOUT_S)
        if not await self._publisher.flush(STOP_FLUSH_TIMEOUT_S):
            _log.warning("stopping with %d message(s) still queued", self._publisher.waiting())
        await self._surveys.stop()
        await self._publisher.stop()
        await self._link.stop()
        # Nothing more may be published: stop every task that would, then wait for them.
        self._birth.cancel()
        self._hubs.stop_forwarding()
        if self._reporter_task is not None:
            self._reporter_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter_task
        await self._birth.stop()
        await self._hubs.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self._notifier.close()
        # Events of the hubs' last moments are queued for the loop's next turn: store them now.
        self._publisher.commit()
        self._outbox.close()
        _log.info("gatewayd stopped")

    # --- what the link and the hubs report ----------------------------------------------

    async def _on_message(self, message: InboundMessage) -> None:
        await self._requests.on_message(message)

    async def _on_connected(self, session: int) -> None:
        self._reporter.touch()
        await self._birth.publish()
        self._publisher.wake()

    async def _on_hub_link_change(self, rt: HubRuntime) -> None:
        self._reporter.touch()
        await self._birth.publish_availability(rt)


async def run_daemon(kit: KitConfig, config_bytes: bytes, config_path: Path | None = None) -> int:
    daemon = Daemon(kit, config_bytes=config_bytes, config_path=config_path)
    await daemon.run()
    return 0


def main_run(config_path: Path, *, log_level_forced: bool = False) -> int:
    """`gatewayd run --config KIT`: exit 0 on a clean stop, 1 on a failure, and 2 for a config
    (or the credential it names) that a restart cannot fix: the unit's RestartPreventExitStatus."""
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
    if kit.mqtt.password_credential is not None:
        # systemd sets a unit's credentials up before it starts and never changes them while it
        # runs: one missing now stays missing, so it is a bad set-up, not something to wait for.
        try:
            kit.mqtt.read_password()
        except SecretError as exc:
            print(f"gatewayd run: {config_path}: {exc}", file=sys.stderr)
            return 2
    if not log_level_forced:
        logging.getLogger().setLevel(kit.log.level.number)
    too_few = raise_open_file_limit(len(kit.all_hubs))
    if too_few is not None:
        print(f"gatewayd run: {config_path}: {too_few}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(run_daemon(kit, config_bytes, config_path))
    except (OutboxError, MetricsServerError) as exc:
        print(f"gatewayd run: {exc}", file=sys.stderr)
        return 1
