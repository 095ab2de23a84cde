"""The WAN probe: does the hub reach the DCC before the deadline?

Hub state and events -> probe outcome. Polls GET_WAN_STATUS on the retry
schedule, and wakes at once on WAN_STATE_CHANGED, a hub restart or a reopened
port. Asks the hub to re-attach (WAN_RECONNECT) when it reports FAULT or has
been searching too long, a bounded number of times. The outcome can be read at
any moment (``outcome()``), so a DCC notice or a cancellation that stops the
probe still leaves its evidence.

Only the hub's word settles the stage: the read at the deadline is retried
until the hub answers it, and a hub that goes silent (the driver's rule) stops
the probe with ``silence`` set, for the job to end failed rather than be given
an outcome the kit's own timer filled in.
"""

from __future__ import annotations

from gatewayd.clock import Clock
from gatewayd.config.kit import StageTiming
from gatewayd.engine.outcomes import RssiSample, WanOutcome
from gatewayd.engine.probes.base import Probe
from gatewayd.engine.probes.events import watching
from gatewayd.engine.progress import Kind, Reporter, Stage
from gatewayd.engine.published import enum_label
from gatewayd.engine.retry import AttemptTimeout, Wake
from gatewayd_drivers.commshub.client import ClientEvent, HubClient, HubSilent, LinkLost, LinkUp
from gatewayd_drivers.commshub.errors import HubDisconnected, HubError
from gatewayd_drivers.commshub.messages import HubStarted, WanState, WanStateChanged, WanStatus

_REGISTERED_OR_BETTER = (WanState.REGISTERED, WanState.CONNECTED)


class WanProbe(Probe):
    def __init__(
        self,
        hub: HubClient,
        clock: Clock,
        timing: StageTiming,
        report: Reporter,
    ) -> None:
        super().__init__(Stage.WAN, hub, clock, timing, timing.wan, report)
        self._state: WanState | int | None = None
        self._attach_attempts = 0
        self._reconnects = 0
        self._time_registered: float | None = None
        self._time_connected: float | None = None
        self._dropped = False
        self._trail: list[RssiSample] = []
        self._state_since = self._start

    @property
    def established(self) -> bool:
        return self._time_connected is not None

    def outcome(self) -> WanOutcome:
        return WanOutcome(
            established=self.established,
            final_state=self._state,
            deadline_s=self.timing.wan.deadline_s,
            attempts=self._attach_attempts,
            polls=self._schedule.attempts,
            reconnects=self._reconnects,
            time_to_registered_s=self._time_registered,
            time_to_connected_s=self._time_connected,
            rssi_trail=tuple(self._trail),
            stuck_in_fault=self._state == WanState.FAULT and not self.established,
            dropped_after_connect=self._dropped,
            error=self._error,
        )

    async def run(self) -> WanOutcome:
        self.report(
            Stage.WAN,
            Kind.STAGE,
            f"Waiting for the hub to connect to the DCC "
            f"(up to {_minutes(self.timing.wan.deadline_s)})",
        )
        async with watching(self.hub, self._on_event):
            await self._loop()
        outcome = self.outcome()
        if outcome.established:
            msg = f"WAN connected after {outcome.time_to_connected_s:.0f} s"
        else:
            msg = f"WAN not connected by the deadline (last state {enum_label(self._state)})"
        self.report(Stage.WAN, Kind.STAGE, msg, wan_state=enum_label(self._state))
        return outcome

    async def _loop(self) -> None:
        while True:
            await self._poll()
            if self.established or self._hopeless_fault() or self.silence is not None:
                return
            await self._maybe_reconnect()
            wake = await self._schedule.wait_next()
            if self.established or self.silence is not None:
                return
            if wake is Wake.DEADLINE:
                await self._read_until_answered(self._poll)  # the state at the deadline
                return

    async def _poll(self) -> bool:
        """One status read; True when the hub answered it."""
        try:
            status = await self._schedule.attempt(self.hub.get_wan_status())
        except HubDisconnected as exc:
            self.link_down = True
            self._error = f"lost contact with the hub: {exc}"
            return False
        except (HubError, AttemptTimeout) as exc:
            self._error = f"hub did not give its WAN status: {exc}"
            self.report(Stage.WAN, Kind.NOTE, self._error, attempt=self._schedule.attempts)
            self._heard_silence(self.hub.silence())
            return False
        self.link_down = False
        self._error = None
        self._observe(status, polled=True)
        return True

    def _observe(self, status: WanStatus, *, polled: bool) -> None:
        t = self.clock.monotonic() - self._start
        changed = status.state != self._state
        if changed:
            self._state_since = self.clock.monotonic()
        # Trust the hub's own count of seconds in a state that it was in before we looked.
        if polled and status.seconds_in_state and changed:
            self._state_since = min(
                self._state_since, self.clock.monotonic() - status.seconds_in_state
            )
        self._state = status.state
        self._attach_attempts = max(self._attach_attempts, status.attach_attempts)
        if status.rssi_dbm is not None and (
            not self._trail or self._trail[-1].dbm != status.rssi_dbm
        ):
            self._trail.append(RssiSample(round(t, 3), status.rssi_dbm))
        within_deadline = t <= self.timing.wan.deadline_s
        if status.state in _REGISTERED_OR_BETTER and self._time_registered is None:
            self._time_registered = round(t, 3)
        if status.state == WanState.CONNECTED and self._time_connected is None and within_deadline:
            self._time_connected = round(t, 3)
        if self.established and status.state != WanState.CONNECTED:
            self._dropped = True
        if changed or polled:
            signal = f", signal {status.rssi_dbm} dBm" if status.rssi_dbm is not None else ""
            self.report(
                Stage.WAN,
                Kind.HUB_STATE if changed else Kind.ATTEMPT,
                f"WAN {enum_label(status.state)}{signal}"
                if changed
                else f"poll {self._schedule.attempts}: still {enum_label(status.state)}{signal}",
                attempt=self._schedule.attempts,
                wan_state=enum_label(status.state),
                rssi_dbm=status.rssi_dbm,
            )

    def _can_reconnect(self) -> bool:
        return self._reconnects < self.timing.max_reconnects

    def _hopeless_fault(self) -> bool:
        """FAULT does not clear by itself: stop once we may not ask the hub to re-attach."""
        if self._state != WanState.FAULT:
            return False
        return not (self.timing.reconnect_on_fault and self._can_reconnect())

    async def _maybe_reconnect(self) -> None:
        if not self._can_reconnect() or self.link_down or self.silence is not None:
            return
        searching_for = self.clock.monotonic() - self._state_since
        if self._state == WanState.FAULT and self.timing.reconnect_on_fault:
            why = "the hub reports a WAN fault"
        elif (
            self._state in (WanState.SEARCHING, WanState.OFF)
            and searching_for >= self.timing.reconnect_after_searching_s
        ):
            why = f"the hub has been searching for {searching_for:.0f} s"
        else:
            return
        try:
            await self._schedule.attempt(self.hub.wan_reconnect())
        except (HubError, AttemptTimeout) as exc:
            self.report(Stage.WAN, Kind.NOTE, f"WAN reconnect refused or unanswered: {exc}")
            self._heard_silence(self.hub.silence())
            return
        self._reconnects += 1
        self._state_since = self.clock.monotonic()
        self._schedule.reset_backoff()
        self.report(
            Stage.WAN,
            Kind.ATTEMPT,
            f"Asked the hub to re-attach ({why}); reconnect {self._reconnects} of "
            f"{self.timing.max_reconnects}",
            attempt=self._reconnects,
        )

    def _on_event(self, event: ClientEvent) -> None:
        if isinstance(event, WanStateChanged):
            self._observe(event.status, polled=False)
            self._wake.set()
        elif isinstance(event, HubStarted):
            self.report(Stage.WAN, Kind.LINK, "The hub restarted; re-reading its WAN state")
            self._wake.set()
        elif isinstance(event, LinkUp) and event.reopened:
            self.link_down = False
            self.report(Stage.WAN, Kind.LINK, "Hub cable back; re-reading its WAN state")
            self._wake.set()
        elif isinstance(event, LinkLost):
            self.link_down = True
            self.report(Stage.WAN, Kind.LINK, f"Lost the hub's serial link: {event.reason}")
        elif isinstance(event, HubSilent):
            self._heard_silence(event.silence)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
