"""The hub's HAN on the site clock: the device log, join windows and each device's behaviour.

A device joins, fails or gets lost according to its ``[[han.devices]]`` entry;
a device the scenario does not describe never joins. Changes come out as hub
events through ``emit``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    ConnectedToEsme,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLog,
    DeviceLogAdd,
    DeviceLogChanged,
    DeviceLogEntry,
    DeviceType,
    DisconnectedFromEsme,
    HanState,
    HanStatus,
    HubEvent,
    JoinFailReason,
    JoinState,
    Status,
    ThreeLostGsmeSearchesFailed,
    enum_name,
)
from gatewayd_sim.commshub.clock import SiteClock
from gatewayd_sim.commshub.scenario import HanDevice, HanSection, HubSection

DEVICE_LOG_SIZE = 16
_U32_MAX = 0xFFFFFFFE  # 0xFFFFFFFF means "never"


@dataclass
class _Entry:
    eui64: Eui64
    device_type: DeviceType | int
    install_code: bytes
    profile: HanDevice | None
    join_state: JoinState = JoinState.WHITELISTED
    windows: int = 0
    heard_at: float | None = None  # site time the hub last heard the device
    joined_at: float | None = None
    window_timers: list[asyncio.TimerHandle] = field(default_factory=list)
    lost_timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        label = self.profile.label if self.profile is not None else None
        return f"{label or enum_name(self.device_type)} {self.eui64}"


class HanModel:
    def __init__(
        self,
        config: HanSection,
        hub: HubSection,
        clock: SiteClock,
        emit: Callable[[HubEvent], None],
        note: Callable[[str], None],
    ) -> None:
        self._config = config
        self._hub = hub
        self._clock = clock
        self._emit = emit
        self._note = note
        self._entries: dict[Eui64, _Entry] = {}

    # --- reading ---------------------------------------------------------------

    def open_windows(self) -> int:
        return sum(1 for e in self._entries.values() if e.join_state is JoinState.JOINING)

    def status(self) -> HanStatus:
        return HanStatus(
            state=HanState.UP if self._config.up else HanState.DOWN,
            channel=self._hub.han_channel,
            subghz_channel=self._hub.subghz_channel,
            pan_id=self._hub.han_pan_id,
            extended_pan_id=self._hub.eui64,
            open_join_windows=self.open_windows(),
        )

    def log(self) -> DeviceLog:
        return DeviceLog(tuple(self._record(e) for e in self._entries.values()))

    def _record(self, entry: _Entry) -> DeviceLogEntry:
        heard = entry.heard_at is not None
        profile = entry.profile
        return DeviceLogEntry(
            eui64=entry.eui64,
            device_type=entry.device_type,
            join_state=entry.join_state,
            band=profile.han_band if profile is not None and heard else Band.GHZ_2_4,
            rssi_dbm=profile.rssi if profile is not None and heard else None,
            lqi=profile.lqi if profile is not None and heard else 0,
            last_comms_s=self._last_comms(entry),
        )

    def _last_comms(self, entry: _Entry) -> int | None:
        now = self._clock.now()
        if entry.join_state is JoinState.JOINED and entry.joined_at is not None:
            # A joined device reports on its own cycle; the hub heard it at the last one.
            interval = entry.profile.comms_interval_s if entry.profile else 30.0
            return min(_U32_MAX, int((now - entry.joined_at) % interval))
        if entry.heard_at is None:
            return None
        return min(_U32_MAX, int(now - entry.heard_at))

    # --- commands --------------------------------------------------------------

    def add(self, request: DeviceLogAdd) -> Status:
        """DEVICE_LOG_ADD after its parameters were checked: add or replace, open a window."""
        entry = self._entries.get(request.eui64)
        if entry is None:
            if len(self._entries) >= DEVICE_LOG_SIZE:
                return Status.DEVICE_LOG_FULL
            entry = _Entry(
                request.eui64,
                request.device_type,
                request.install_code,
                self._config.device(request.eui64),
            )
            self._entries[request.eui64] = entry
        else:
            entry.device_type = request.device_type
            entry.install_code = request.install_code
            self._cancel(entry, lost_too=True)
        self._open_window(entry, request.join_timeout_s)
        self._log_changed()
        return Status.OK

    def remove(self, eui64: Eui64) -> Status:
        entry = self._entries.pop(eui64, None)
        if entry is None:
            return Status.NOT_FOUND
        self._cancel(entry, lost_too=True)
        self._note(f"device log: removed {entry.name}")
        self._log_changed()
        return Status.OK

    def power_on(self) -> None:
        """After a restart: open join windows close; the log itself survives."""
        for entry in self._entries.values():
            if entry.join_state is JoinState.JOINING:
                self._cancel(entry, lost_too=False)
                entry.join_state = JoinState.WHITELISTED

    def stop(self) -> None:
        for entry in self._entries.values():
            self._cancel(entry, lost_too=True)

    # --- the site's story ------------------------------------------------------

    def _open_window(self, entry: _Entry, timeout_s: int) -> None:
        entry.windows += 1
        entry.join_state = JoinState.JOINING
        self._note(f"join window {entry.windows} open for {entry.name} ({timeout_s} site s)")
        timers = entry.window_timers
        timers.append(self._clock.call_later(timeout_s, lambda: self._expire(entry)))
        profile = entry.profile
        if profile is None or not self._config.up:
            return
        if profile.behaviour == "join":
            if entry.windows >= profile.join_on_window and profile.join_after_s < timeout_s:
                timers.append(
                    self._clock.call_later(profile.join_after_s, lambda: self._join(entry))
                )
        elif profile.behaviour == "key_failure" and profile.fail_after_s < timeout_s:
            timers.append(
                self._clock.call_later(profile.fail_after_s, lambda: self._key_failure(entry))
            )

    def _join(self, entry: _Entry) -> None:
        self._cancel(entry, lost_too=True)
        now = self._clock.now()
        entry.join_state = JoinState.JOINED
        entry.heard_at = entry.joined_at = now
        self._note(f"JOINED: {entry.name} on window {entry.windows}")
        self._emit(DeviceJoinSucceeded(entry.eui64))
        if entry.device_type == DeviceType.ESME:
            self._emit(ConnectedToEsme(entry.eui64))
        self._log_changed()
        profile = entry.profile
        if profile is not None and profile.lost_after_s is not None:
            entry.lost_timer = self._clock.call_later(
                profile.lost_after_s, lambda: self._lost(entry)
            )

    def _expire(self, entry: _Entry) -> None:
        self._cancel(entry, lost_too=False)
        entry.join_state = JoinState.JOIN_FAILED
        self._note(f"JOIN FAILED: {entry.name}: window {entry.windows} expired")
        self._emit(DeviceJoinFailed(entry.eui64, JoinFailReason.WINDOW_EXPIRED))
        self._log_changed()

    def _key_failure(self, entry: _Entry) -> None:
        self._cancel(entry, lost_too=False)
        entry.join_state = JoinState.JOIN_FAILED
        entry.heard_at = self._clock.now()
        self._note(f"JOIN FAILED: {entry.name}: key establishment failed")
        self._emit(DeviceJoinFailed(entry.eui64, JoinFailReason.KEY_ESTABLISHMENT_FAILED))
        self._log_changed()

    def _lost(self, entry: _Entry) -> None:
        entry.lost_timer = None
        now = self._clock.now()
        joined = entry.joined_at if entry.joined_at is not None else now
        interval = entry.profile.comms_interval_s if entry.profile else 30.0
        entry.heard_at = joined + math.floor((now - joined) / interval) * interval
        entry.join_state = JoinState.LOST
        self._note(f"LOST: {entry.name}")
        if entry.device_type == DeviceType.GSME:
            self._emit(ThreeLostGsmeSearchesFailed(entry.eui64))
        elif entry.device_type == DeviceType.ESME:
            self._emit(DisconnectedFromEsme(entry.eui64))
        self._log_changed()

    def _cancel(self, entry: _Entry, *, lost_too: bool) -> None:
        for handle in entry.window_timers:
            self._clock.cancel(handle)
        entry.window_timers.clear()
        if lost_too:
            self._clock.cancel(entry.lost_timer)
            entry.lost_timer = None

    def _log_changed(self) -> None:
        if self._config.log_changed_events:
            self._emit(DeviceLogChanged())
