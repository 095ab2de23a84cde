"""The HAN probe: does every device join the hub's HAN?

Hub state and events -> probe outcome. Adds each device to the hub's device log
with its install code and a join window; a join is seen from
DEVICE_JOIN_SUCCEEDED or from JOINED in DEVICE_LOG_READ. A failed window is
retried by adding the device again (a new window), up to the configured number
of windows, within the stage deadline. A hub restart closes open windows
without it being the device's fault, so those are reopened without using up
an attempt; after a reopened port the device log is read to catch up on what
happened while the cable was out.

Only the hub's word settles the stage: the closing read of the device log is
retried until the hub answers it, and a hub that goes silent (the driver's
rule) stops the probe with ``silence`` set, for the job to end failed rather
than with windows the kit's own timer declared expired.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatewayd.clock import Clock
from gatewayd.config.job import Device
from gatewayd.config.kit import StageTiming
from gatewayd.engine.outcomes import DeviceOutcome, HanOutcome, JoinFailure
from gatewayd.engine.probes.base import Probe
from gatewayd.engine.probes.events import watching
from gatewayd.engine.progress import Kind, Reporter, Stage
from gatewayd.engine.retry import AttemptTimeout, Wake
from gatewayd_drivers.commshub.client import ClientEvent, HubClient, HubSilent, LinkLost, LinkUp
from gatewayd_drivers.commshub.errors import HubDisconnected, HubError, HubStatusError
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLog,
    HubStarted,
    JoinFailReason,
    JoinState,
    ThreeLostGsmeSearchesFailed,
)

# A window whose end the hub did not report (its event lost while the cable was
# out, say) is taken as expired this long after it should have closed.
_WINDOW_GRACE_FRACTION = 0.1
_WINDOW_GRACE_MIN_S = 5.0


@dataclass
class _DeviceState:
    device: Device
    attempts: int = 0
    first_window_at: float | None = None
    window_opened_at: float | None = None  # None: no window open now
    needs_window: bool = True
    joined_at: float | None = None
    last_failure: JoinFailure | None = None
    band: Band | int | None = None
    rssi_dbm: int | None = None
    lqi: int | None = None
    done: bool = False

    @property
    def label(self) -> str:
        return f"{self.device.type.name} {self.device.eui64}"


class HanProbe(Probe):
    def __init__(
        self,
        hub: HubClient,
        clock: Clock,
        timing: StageTiming,
        devices: list[Device],
        report: Reporter,
    ) -> None:
        super().__init__(Stage.HAN, hub, clock, timing, timing.han, report)
        self._devices = {d.eui64: _DeviceState(d) for d in devices}
        self._catch_up = False
        self._deadline_reached = False

    def outcome(self) -> HanOutcome:
        return HanOutcome(
            probed=True,
            devices=tuple(self._device_outcome(s) for s in self._devices.values()),
            error=self._error,
        )

    def _device_outcome(self, s: _DeviceState) -> DeviceOutcome:
        joined = s.joined_at is not None
        return DeviceOutcome(
            eui64=s.device.eui64,
            type=s.device.type,
            required=s.device.required,
            probed=s.attempts > 0,
            joined=joined,
            attempts=s.attempts,
            seconds_to_join=(
                round(s.joined_at - s.first_window_at, 3)
                if s.joined_at is not None and s.first_window_at is not None
                else None
            ),
            band=s.band,
            rssi_dbm=s.rssi_dbm,
            lqi=s.lqi,
            last_failure=None if joined else s.last_failure,
        )

    async def run(self) -> HanOutcome:
        self.report(
            Stage.HAN,
            Kind.STAGE,
            f"Adding {len(self._devices)} device(s) to the hub; join windows of "
            f"{self.timing.join_window_s} s, up to {self.timing.join_attempts} each",
        )
        async with watching(self.hub, self._on_event):
            await self._loop()
            if self.silence is None:
                # The hub's last word; band, signal and LQI.
                await self._read_until_answered(self._read_log)
        if self._deadline_reached and self.silence is None:
            for s in self._devices.values():
                if not s.done and s.last_failure is None:
                    s.last_failure = JoinFailure.WINDOW_EXPIRED
        joined = sum(1 for s in self._devices.values() if s.joined_at is not None)
        self.report(
            Stage.HAN, Kind.STAGE, f"{joined} of {len(self._devices)} device(s) joined the HAN"
        )
        return self.outcome()

    async def _loop(self) -> None:
        while True:
            await self._open_windows()
            if self._catch_up:
                self._catch_up = False
                await self._read_log()
            self._expire_overdue_windows()
            if all(s.done for s in self._devices.values()) or self.silence is not None:
                return
            wake = await self._schedule.wait_next()
            if self.silence is not None:
                return
            if wake is Wake.POLL:
                await self._read_log()
            elif wake is Wake.DEADLINE:
                self._deadline_reached = True
                return

    def _now(self) -> float:
        return self.clock.monotonic() - self._start

    async def _open_windows(self) -> None:
        for s in self._devices.values():
            if s.done or not s.needs_window or self.link_down:
                continue
            if s.attempts >= self.timing.join_attempts:
                s.done = True
                continue
            if self._schedule.expired:
                s.done = True
                continue
            await self._add(s, counts=True)

    async def _add(self, s: _DeviceState, *, counts: bool) -> None:
        d = s.device
        try:
            await self._schedule.attempt(
                self.hub.device_log_add(d.eui64, d.type, d.install_code, self.timing.join_window_s)
            )
        except HubDisconnected:
            self.link_down = True
            return
        except HubStatusError as exc:
            s.last_failure = JoinFailure.HUB_ERROR
            s.done = True
            self.report(
                Stage.HAN, Kind.DEVICE, f"{s.label}: the hub refused it: {exc}", device=str(d.eui64)
            )
            return
        except (HubError, AttemptTimeout) as exc:
            self.report(Stage.HAN, Kind.NOTE, f"{s.label}: could not add it yet: {exc}")
            self._heard_silence(self.hub.silence())
            return
        now = self._now()
        if counts:
            s.attempts += 1
        if s.first_window_at is None:
            s.first_window_at = now
        s.window_opened_at = now
        s.needs_window = False
        self.report(
            Stage.HAN,
            Kind.ATTEMPT,
            f"{s.label}: join window {s.attempts} of {self.timing.join_attempts} open",
            attempt=s.attempts,
            device=str(d.eui64),
        )

    def _joined(self, s: _DeviceState) -> None:
        if s.joined_at is not None:
            return
        s.joined_at = self._now()
        s.window_opened_at = None
        s.needs_window = False
        s.done = True
        s.last_failure = None
        took = s.joined_at - (s.first_window_at or s.joined_at)
        self.report(
            Stage.HAN,
            Kind.DEVICE,
            f"{s.label} joined after {took:.0f} s",
            attempt=s.attempts,
            device=str(s.device.eui64),
        )

    def _window_failed(self, s: _DeviceState, failure: JoinFailure) -> None:
        if s.done or s.window_opened_at is None:
            return
        s.window_opened_at = None
        s.last_failure = failure
        more = s.attempts < self.timing.join_attempts and not self._schedule.expired
        s.needs_window = more
        s.done = not more
        what = failure.value.replace("_", " ")
        self.report(
            Stage.HAN,
            Kind.DEVICE,
            f"{s.label}: join failed ({what})" + ("; opening a new window" if more else ""),
            attempt=s.attempts,
            device=str(s.device.eui64),
        )

    def _lost(self, s: _DeviceState) -> None:
        if s.joined_at is None:
            return
        s.joined_at = None
        s.window_opened_at = None
        s.last_failure = JoinFailure.LOST
        s.needs_window = s.attempts < self.timing.join_attempts
        s.done = not s.needs_window
        self.report(
            Stage.HAN, Kind.DEVICE, f"{s.label}: lost after joining", device=str(s.device.eui64)
        )

    def _expire_overdue_windows(self) -> None:
        window = self.timing.join_window_s
        grace = max(_WINDOW_GRACE_MIN_S, window * _WINDOW_GRACE_FRACTION)
        now = self._now()
        for s in self._devices.values():
            if s.window_opened_at is not None and now - s.window_opened_at > window + grace:
                self._window_failed(s, s.last_failure or JoinFailure.WINDOW_EXPIRED)

    async def _read_log(self) -> bool:
        """Read the hub's device log and act on it; True when the hub answered."""
        try:
            log: DeviceLog = await self._schedule.attempt(self.hub.device_log_read())
        except HubDisconnected:
            self.link_down = True
            return False
        except (HubError, AttemptTimeout) as exc:
            self.report(Stage.HAN, Kind.NOTE, f"could not read the device log: {exc}")
            self._heard_silence(self.hub.silence())
            return False
        for s in self._devices.values():
            entry = log.find(s.device.eui64)
            if entry is None:
                continue
            s.band, s.rssi_dbm, s.lqi = entry.band, entry.rssi_dbm, entry.lqi
            if entry.join_state == JoinState.JOINED:
                self._joined(s)
            elif entry.join_state == JoinState.LOST:
                self._lost(s)
            elif entry.join_state == JoinState.JOIN_FAILED:
                self._window_failed(s, s.last_failure or JoinFailure.WINDOW_EXPIRED)
            elif entry.join_state == JoinState.WHITELISTED and s.window_opened_at is not None:
                # Our window is gone without a join or a failure: the hub restarted.
                self._reopen_after_restart(s)
        return True

    def _reopen_after_restart(self, s: _DeviceState) -> None:
        if s.done or s.window_opened_at is None:
            return
        s.window_opened_at = None
        s.needs_window = True
        # The restart was not the device's fault: give the window back.
        s.attempts = max(0, s.attempts - 1)

    def _on_event(self, event: ClientEvent) -> None:
        match event:
            case DeviceJoinSucceeded(eui64=eui) if s := self._device(eui):
                self._joined(s)
            case DeviceJoinFailed(eui64=eui, reason=reason) if s := self._device(eui):
                failure = (
                    JoinFailure.KEY_ESTABLISHMENT_FAILED
                    if reason == JoinFailReason.KEY_ESTABLISHMENT_FAILED
                    else JoinFailure.WINDOW_EXPIRED
                )
                self._window_failed(s, failure)
            case ThreeLostGsmeSearchesFailed(eui64=eui) if s := self._device(eui):
                self._lost(s)
            case HubStarted():
                self.report(Stage.HAN, Kind.LINK, "The hub restarted: reopening join windows")
                for s in self._devices.values():
                    self._reopen_after_restart(s)
            case LinkUp(reopened=True):
                self.link_down = False
                self._catch_up = True
                self.report(Stage.HAN, Kind.LINK, "Hub cable back; reading the device log")
            case LinkLost(reason=reason):
                self.link_down = True
                self.report(Stage.HAN, Kind.LINK, f"Lost the hub's serial link: {reason}")
            case HubSilent(silence=silence):
                self._heard_silence(silence)
            case _:
                return
        self._wake.set()

    def _device(self, eui: Eui64) -> _DeviceState | None:
        return self._devices.get(eui)
