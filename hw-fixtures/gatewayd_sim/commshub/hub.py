"""The Comms Hub simulator: a pty port, the LSP device side and the site model, wired together.

``HubSimulator`` owns the port, executes commands against the WAN and HAN
models, turns model changes into events, and plays the scenario's cable pulls,
restarts and noise. It also keeps what tests need to look at: frames received,
ACKs, responses and events sent, and the model's current state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gatewayd_drivers.commshub.framing import Frame
from gatewayd_drivers.commshub.messages import (
    MAX_JOIN_TIMEOUT_S,
    Cmd,
    DeviceLog,
    DeviceLogAdd,
    DeviceLogRemove,
    HanStatus,
    HubEvent,
    HubInfo,
    HubStarted,
    PayloadError,
    StartReason,
    Status,
    WanStateChanged,
    WanStatus,
    enum_name,
    event_code,
)
from gatewayd_sim.commshub.clock import Scheduler, SiteClock
from gatewayd_sim.commshub.faults import Faults
from gatewayd_sim.commshub.han import HanModel
from gatewayd_sim.commshub.protocol import (
    LspDevice,
    ReceivedFrame,
    SentEvent,
    SentResponse,
    status_payload,
)
from gatewayd_sim.commshub.scenario import Scenario
from gatewayd_sim.commshub.wan import WanModel, WanReporter
from gatewayd_sim.pty import PtyPort

_log = logging.getLogger(__name__)

Note = Callable[[str], None]
T = TypeVar("T")


def _need(value: T | None) -> T:
    if value is None:
        raise RuntimeError("the hub simulator is not started")
    return value


class HubSimulator:
    """A simulated Comms Hub on a pty reached through ``link``.

    ``speed`` (site seconds per real second) and ``seed`` override the
    scenario's ``[sim]``. ``on_note`` receives one readable line per notable
    thing (requests, events, WAN changes, joins, cable pulls, restarts).
    """

    def __init__(
        self,
        scenario: Scenario,
        link: Path,
        *,
        speed: float | None = None,
        seed: int | None = None,
        on_note: Note | None = None,
    ) -> None:
        self.scenario = scenario
        self.link = link
        self.speed = scenario.sim.speed if speed is None else speed
        if self.speed <= 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        self.seed = scenario.sim.seed if seed is None else seed
        self._on_note = on_note
        self._port = PtyPort(link, self._on_data)
        self._running = False
        self._replug_at: float | None = None
        self._replug_timer: asyncio.TimerHandle | None = None
        # Built in start(): they need the running loop.
        self._scheduler: Scheduler | None = None
        self._clock: SiteClock | None = None
        self._lsp: LspDevice | None = None
        self._wan: WanModel | None = None
        self._reporter: WanReporter | None = None
        self._han: HanModel | None = None
        self._faults: Faults | None = None
        self._boot_at = 0.0
        self.restarts: list[tuple[float, StartReason]] = []  # (loop time, reason)
        self.cable_pulls: list[tuple[float, float]] = []  # (loop time, real seconds out)
        self.silences: list[tuple[float, float | None]] = []  # (loop time, site seconds or None)
        self._silent_until: float | None = None  # site time; inf: for the rest of the run
        self._answered: Counter[int] = Counter()  # requests executed, by CMD

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Create the port and start the site's story at site time 0.

        The hub counts as already powered when the cable is first plugged in:
        no banner and no HUB_STARTED (a client's open() would flush them anyway);
        event SEQs start at 1.
        """
        if self._running:
            return
        loop = asyncio.get_running_loop()
        scheduler = self._scheduler = Scheduler(loop)
        clock = self._clock = SiteClock(scheduler, self.speed)
        faults = self._faults = Faults(self.scenario.faults, self.seed)
        self._lsp = LspDevice(scheduler, self._transmit, self._execute, faults, self._note)
        self._wan = WanModel(self.scenario.wan, clock, self._on_wan_change)
        self._reporter = WanReporter(scheduler, self._wan.status, self._send_wan_event)
        self._han = HanModel(
            self.scenario.han, self.scenario.hub, clock, self._raise_event, self._note
        )
        self._port.open()
        self._running = True
        self._boot_at = clock.now()
        self._wan.power_on()
        self._reporter.reset()
        self._schedule_scenario_faults()
        self._note(f"started: port {self._port.path}, link {self.link}, speed {self.speed:g}")

    async def stop(self) -> None:
        """Cancel every timer, close the pty and remove the link."""
        if not self._running:
            return
        self._running = False
        if self._wan is not None:
            self._wan.stop()
        if self._han is not None:
            self._han.stop()
        if self._lsp is not None:
            self._lsp.stop()
        if self._scheduler is not None:
            self._scheduler.cancel_all()
        self._port.close()
        self._note("stopped")

    async def __aenter__(self) -> HubSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- state for tests and the CLI ------------------------------------------

    @property
    def port_path(self) -> str | None:
        """The pty slave behind the link; ``None`` while the cable is out."""
        return self._port.path

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    @property
    def running(self) -> bool:
        return self._running

    def site_time(self) -> float:
        return _need(self._clock).now()

    def wan_status(self) -> WanStatus:
        return _need(self._wan).status()

    def han_status(self) -> HanStatus:
        return _need(self._han).status()

    def device_log(self) -> DeviceLog:
        return _need(self._han).log()

    def hub_info(self) -> HubInfo:
        hub = self.scenario.hub
        uptime = max(0, int(_need(self._clock).now() - self._boot_at))
        return HubInfo(hub.eui64, hub.hw, hub.wan, hub.csp_region, hub.firmware, uptime)

    @property
    def frames_received(self) -> list[ReceivedFrame]:
        return _need(self._lsp).frames_received

    @property
    def acks_received(self) -> list[ReceivedFrame]:
        return _need(self._lsp).acks_received

    @property
    def responses_sent(self) -> list[SentResponse]:
        return _need(self._lsp).responses_sent

    @property
    def events_sent(self) -> list[SentEvent]:
        return _need(self._lsp).events_sent

    @property
    def executed(self) -> Counter[int]:
        """How many times each CMD was really executed (replays and BUSY not counted)."""
        return _need(self._lsp).executed

    @property
    def faults_injected(self) -> Counter[str]:
        return _need(self._faults).injected

    # --- test hooks -----------------------------------------------------------

    def emit_event(self, event: HubEvent) -> SentEvent:
        """Send any event now, with the hub's next SEQ and the usual resends."""
        self._require_running()
        return _need(self._lsp).send_event(event_code(event), event.encode())

    def pull_cable(self, duration_s_real: float) -> None:
        """Unplug now (the link disappears) and plug back in after ``duration_s_real``."""
        self._require_running()
        scheduler = _need(self._scheduler)
        back_at = scheduler.time() + max(0.0, duration_s_real)
        self.cable_pulls.append((scheduler.time(), duration_s_real))
        if self._port.plugged:
            self._port.unplug()
            _need(self._lsp).link_lost()
            self._note(f"CABLE PULLED for {duration_s_real:.3g} real s")
        elif self._replug_at is not None and self._replug_at >= back_at:
            return  # already out for longer
        scheduler.cancel(self._replug_timer)
        self._replug_at = back_at
        self._replug_timer = scheduler.call_at(back_at, self._replug)

    def restart(self, reason: StartReason = StartReason.POWER_ON) -> None:
        """Restart: boot banner, HUB_STARTED with SEQ 0, windows closed, WAN attaching again."""
        self._require_running()
        lsp = _need(self._lsp)
        clock = _need(self._clock)
        self.restarts.append((_need(self._scheduler).time(), reason))
        self._note(f"RESTART ({enum_name(reason)})")
        lsp.power_on()
        self._boot_at = clock.now()
        _need(self._han).power_on()
        _need(self._wan).power_on()
        _need(self._reporter).reset()
        self._port.write(self.scenario.hub.banner_bytes())
        lsp.send_event(event_code(HubStarted(reason)), HubStarted(reason).encode())

    # --- internals ------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("the hub simulator is not running")

    def _note(self, text: str) -> None:
        if self._clock is not None:
            text = f"[site {self._clock.now():8.1f}s] {text}"
        _log.debug("%s", text)
        if self._on_note is not None:
            try:
                self._on_note(text)
            except Exception:
                _log.exception("note callback failed")

    def go_silent(self, for_s: float | None = None) -> None:
        """Hang: read nothing and send nothing for ``for_s`` site seconds (None: for good)."""
        self._require_running()
        now = _need(self._clock).now()
        self.silences.append((_need(self._scheduler).time(), for_s))
        self._silent_until = now + for_s if for_s is not None else float("inf")
        self._note("SILENT " + (f"for {for_s:g} site s" if for_s is not None else "for good"))

    @property
    def silent(self) -> bool:
        return self._silent_until is not None and _need(self._clock).now() < self._silent_until

    def _transmit(self, wire: bytes) -> bool:
        if self.silent:
            return False
        return self._port.write(wire)

    def _on_data(self, data: bytes) -> None:
        if self._lsp is not None and not self.silent:
            self._lsp.feed(data)

    def _replug(self) -> None:
        self._replug_timer = None
        self._replug_at = None
        if not self._running:
            return
        self._port.replug()
        self._note(f"cable back: port {self._port.path}, link {self.link}")

    def _raise_event(self, event: HubEvent) -> None:
        # Deferred so a command's RESPONSE leaves before the events it caused.
        lsp = _need(self._lsp)
        _need(self._scheduler).call_later(
            0, lambda: lsp.send_event(event_code(event), event.encode())
        )

    def _on_wan_change(self, forced: bool) -> None:
        status = _need(self._wan).status()
        rssi = "unknown" if status.rssi_dbm is None else f"{status.rssi_dbm} dBm"
        self._note(
            f"WAN {enum_name(status.state)} (+CREG {int(status.reg_state)}, RSSI {rssi}, "
            f"attempt {status.attach_attempts})"
        )
        _need(self._reporter).changed(forced)

    def _send_wan_event(self, event: WanStateChanged) -> None:
        self._raise_event(event)

    def _schedule_scenario_faults(self) -> None:
        clock = _need(self._clock)
        faults = self.scenario.faults
        for pull in faults.cable_pull:
            real = clock.real_delay(pull.for_s)
            clock.call_at(pull.at, functools.partial(self.pull_cable, real))
        for item in faults.restart:
            reason = item.start_reason
            clock.call_at(item.at, functools.partial(self.restart, reason))
        for silence in faults.silent:
            if silence.at is not None:
                clock.call_at(silence.at, functools.partial(self.go_silent, silence.for_s))
        if faults.noise is not None:
            _need(self._scheduler).call_later(faults.noise.every_s, self._noise)

    def _noise(self) -> None:
        faults = _need(self._faults)
        noise = self.scenario.faults.noise
        if noise is None or not self._running:
            return
        if self._port.plugged:
            self._port.write(faults.noise())
        _need(self._scheduler).call_later(noise.every_s, self._noise)

    # --- commands -------------------------------------------------------------

    def _execute(self, frame: Frame) -> bytes:
        self._answered[frame.cmd] += 1
        for silence in self.scenario.faults.silent:
            if silence.after == frame.cmd and self._answered[frame.cmd] == silence.count:
                # Deferred so this request's own answer still leaves.
                silence_now = functools.partial(self.go_silent, silence.for_s)
                _need(self._scheduler).call_later(0, silence_now)
        return self._answer(frame)

    def _answer(self, frame: Frame) -> bytes:
        try:
            cmd = Cmd(frame.cmd)
        except ValueError:
            return status_payload(Status.UNKNOWN_COMMAND)
        payload = frame.payload
        if cmd is Cmd.PING:
            return status_payload(Status.OK)
        if cmd is Cmd.GET_INFO:
            return status_payload(Status.OK, self.hub_info().encode())
        if cmd is Cmd.GET_WAN_STATUS:
            return status_payload(Status.OK, self.wan_status().encode())
        if cmd is Cmd.WAN_RECONNECT:
            _need(self._wan).reconnect()
            return status_payload(Status.OK)
        if cmd is Cmd.GET_HAN_STATUS:
            return status_payload(Status.OK, self.han_status().encode())
        if cmd is Cmd.DEVICE_LOG_ADD:
            return status_payload(self._device_log_add(payload))
        if cmd is Cmd.DEVICE_LOG_REMOVE:
            try:
                remove = DeviceLogRemove.decode(payload)
            except PayloadError:
                return status_payload(Status.BAD_LENGTH)
            return status_payload(_need(self._han).remove(remove.eui64))
        if cmd is Cmd.DEVICE_LOG_READ:
            return status_payload(Status.OK, self.device_log().encode())
        return status_payload(Status.UNKNOWN_COMMAND)

    def _device_log_add(self, payload: bytes) -> Status:
        try:
            request = DeviceLogAdd.decode(payload)
        except PayloadError:
            return Status.BAD_LENGTH
        if not any(request.install_code):
            return Status.BAD_PARAMETER
        if not 1 <= request.join_timeout_s <= MAX_JOIN_TIMEOUT_S:
            return Status.BAD_PARAMETER
        return _need(self._han).add(request)
