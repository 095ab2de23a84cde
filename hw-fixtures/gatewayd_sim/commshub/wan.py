"""The hub's WAN on the site clock: a scripted attach timeline, reconnects and restarts.

``WanModel`` plays the scenario's steps and reports each change; ``WanReporter``
turns changes into WAN_STATE_CHANGED events under the spec's rule (state or
+CREG change at once; RSSI alone at most once a real second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gatewayd_drivers.commshub.messages import (
    RSSI_UNKNOWN,
    RegState,
    WanState,
    WanStateChanged,
    WanStatus,
)
from gatewayd_sim.commshub.clock import Scheduler, SiteClock
from gatewayd_sim.commshub.scenario import WanSection, WanStep

_U32_MAX = 0xFFFFFFFE  # 0xFFFFFFFF means "never"

# +CREG <stat> a real modem shows in each state, unless the step names one.
DEFAULT_REG: dict[WanState, RegState] = {
    WanState.OFF: RegState.NOT_REGISTERED,
    WanState.SEARCHING: RegState.SEARCHING,
    WanState.REGISTERED: RegState.REGISTERED_HOME,
    WanState.CONNECTED: RegState.REGISTERED_HOME,
    WanState.FAULT: RegState.NOT_REGISTERED,
}


class WanModel:
    """WAN attach state; ``on_change(forced)`` is called after every visible change.

    ``forced`` is True when the state or +CREG changed (or a reconnect began),
    False when only the RSSI moved.
    """

    def __init__(
        self, config: WanSection, clock: SiteClock, on_change: Callable[[bool], None]
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_change = on_change
        self._state = WanState.SEARCHING
        self._reg: int = RegState.SEARCHING
        self._rssi: int | None = None
        self._state_since = clock.now()
        self._connected_until: float | None = None  # site time the DCC last reached us
        self._attempts = 0
        self._reconnects = 0
        self._steps: list[asyncio.TimerHandle] = []

    @property
    def state(self) -> WanState:
        return self._state

    @property
    def rssi(self) -> int | None:
        return self._rssi

    def status(self) -> WanStatus:
        now = self._clock.now()
        if self._state is WanState.CONNECTED:
            last: int | None = 0
        elif self._connected_until is None:
            last = None
        else:
            last = min(_U32_MAX, int(now - self._connected_until))
        return WanStatus(
            state=self._state,
            reg_state=self._reg,
            rssi_dbm=self._rssi,
            seconds_in_state=min(_U32_MAX, int(now - self._state_since)),
            last_dcc_contact_s=last,
            attach_attempts=min(0xFFFF, self._attempts),
        )

    def power_on(self) -> None:
        """Boot (start or restart): attach from the start of the main timeline, silently.

        No event: after a restart HUB_STARTED already tells the host to re-read.
        """
        self._attempts = 1
        self._attach(self._config.timeline, announce=False)

    def reconnect(self) -> None:
        """WAN_RECONNECT: drop to SEARCHING at once and attach again."""
        self._attempts += 1
        self._reconnects += 1
        self._attach(self._config.timeline_for_reconnect(self._reconnects), announce=True)

    def stop(self) -> None:
        for handle in self._steps:
            self._clock.cancel(handle)
        self._steps.clear()

    def _attach(self, steps: list[WanStep], *, announce: bool) -> None:
        self.stop()
        self._set(WanState.SEARCHING, RegState.SEARCHING, None, new_attach=True)
        for step in steps:
            if step.at <= 0:
                self._apply(step, notify=False)
            else:
                self._steps.append(self._clock.call_later(step.at, self._stepper(step)))
        if announce:
            self._on_change(True)

    def _stepper(self, step: WanStep) -> Callable[[], None]:
        return lambda: self._apply(step, notify=True)

    def _apply(self, step: WanStep, *, notify: bool) -> None:
        state = step.wan_state if step.wan_state is not None else self._state
        if step.reg is not None:
            reg = step.reg
        elif step.wan_state is not None:
            reg = DEFAULT_REG[state]
        else:
            reg = self._reg
        rssi = self._rssi if step.rssi is None else step.rssi
        if rssi == RSSI_UNKNOWN:
            rssi = None
        before = (self._state, self._reg, self._rssi)
        self._set(state, reg, rssi, new_attach=False)
        if notify and before != (self._state, self._reg, self._rssi):
            self._on_change(before[:2] != (self._state, self._reg))

    def _set(self, state: WanState, reg: int, rssi: int | None, *, new_attach: bool) -> None:
        now = self._clock.now()
        if state is not self._state or new_attach:
            if self._state is WanState.CONNECTED:
                self._connected_until = now
            self._state_since = now
        self._state, self._reg, self._rssi = state, reg, rssi


class WanReporter:
    """Decides when a WAN change becomes a WAN_STATE_CHANGED event (spec section 6)."""

    RSSI_MIN_INTERVAL_S = 1.0  # real time, like every protocol timer

    def __init__(
        self,
        scheduler: Scheduler,
        status: Callable[[], WanStatus],
        send: Callable[[WanStateChanged], None],
    ) -> None:
        self._scheduler = scheduler
        self._status = status
        self._send = send
        self._last_sent_at: float | None = None
        self._reported_rssi: int | None = None
        self._deferred: asyncio.TimerHandle | None = None

    def reset(self) -> None:
        """Forget what was reported (after a restart the host re-reads everything)."""
        self._scheduler.cancel(self._deferred)
        self._deferred = None
        self._last_sent_at = None
        self._reported_rssi = self._status().rssi_dbm

    def changed(self, forced: bool) -> None:
        if forced:
            self._report()
            return
        if self._status().rssi_dbm == self._reported_rssi or self._deferred is not None:
            return
        now = self._scheduler.time()
        due = now if self._last_sent_at is None else self._last_sent_at + self.RSSI_MIN_INTERVAL_S
        if due <= now:
            self._report()
        else:
            self._deferred = self._scheduler.call_at(due, self._deferred_check)

    def _deferred_check(self) -> None:
        self._deferred = None
        if self._status().rssi_dbm != self._reported_rssi:
            self._report()

    def _report(self) -> None:
        self._scheduler.cancel(self._deferred)
        self._deferred = None
        status = self._status()
        self._last_sent_at = self._scheduler.time()
        self._reported_rssi = status.rssi_dbm
        self._send(WanStateChanged(status))
