"""A simulated TI Z-Stack 3.x ZNP stick on a pty: the device side of MT for the RF survey.

Speaks MT over a ``PtyPort`` and behaves as the firmware does where the survey depends
on it: the NV channel list is read at reset (a discovery scans the list latched at the
last reset, not the one just written); a network discovery is refused while the stick
runs a network, answers SUCCESS, then sends beacons as the scan passes each channel and
a ``ZDO.NwkDiscoveryCnf`` at the end; an energy scan (Mgmt_NWK_Update_req to its own
address through ``AF.DataRequestExt``) needs a started network and is reported as
``ZDO.MsgCbIncoming`` only when that cluster's callback was registered. Unknown
commands get an MT RPC error. Scan times are the radio's own (802.15.4 airtime) and run
in real time, like every protocol timer.

What the air holds comes from a ``RadioScenario``; ``move_to`` carries the kit to another
position (LQIs and energies follow).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import struct
from collections.abc import Callable
from pathlib import Path

from gatewayd_drivers.znp import commands as c
from gatewayd_drivers.znp.client import scan_seconds
from gatewayd_drivers.znp.frames import CommandType, FrameDecoder, MtFrame, Subsystem, encode_frame
from gatewayd_sim.pty import PtyPort
from gatewayd_sim.znp.scenario import NetworkSpec, RadioScenario

_log = logging.getLogger(__name__)

CAPABILITIES = 0x0659  # SYS, AF, ZDO, SAPI, UTIL, APP, APP_CNF: as a CC2652 ZNP reports
ALL_MASK = c.channel_mask(c.ALL_CHANNELS)


class ZnpSimulator:
    """One simulated stick behind ``link``."""

    def __init__(
        self,
        scenario: RadioScenario,
        link: Path,
        *,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.position = scenario.site.position
        self._rng = random.Random(scenario.seed)
        self._port = PtyPort(link, self._on_bytes)
        self._decoder = FrameDecoder(self._on_frame)
        self._note = on_note or (lambda line: None)
        self._tasks: set[asyncio.Task[None]] = set()
        self._noise: asyncio.Task[None] | None = None
        self.awake = not scenario.stick.needs_reset
        self.nv: dict[int, bytes] = {c.NV_CHANLIST: ALL_MASK.to_bytes(4, "little")}
        self.active_mask = ALL_MASK
        self.started = False
        self.formed = False
        self.registered: set[int] = set()
        self.received: list[MtFrame] = []  # every frame the host sent, for tests
        self.scanning = False

    # --- lifecycle ------------------------------------------------------------------

    @property
    def link(self) -> Path:
        return self._port.link

    @property
    def port_path(self) -> str | None:
        return self._port.path

    async def start(self) -> None:
        self._port.open()
        if self.scenario.noise.line_garbage_every_s > 0:
            self._noise = asyncio.create_task(self._line_noise())

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._noise] if self._noise else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._noise] if self._noise else [])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._port.close()

    def unplug(self) -> None:
        """Pull the stick: its RAM state (network, callbacks) is gone; NV stays."""
        self._port.unplug()
        for task in self._tasks:
            task.cancel()  # scans in flight die with the power
        self.scanning = False
        self.started = False
        self.registered.clear()
        self.awake = not self.scenario.stick.needs_reset
        self.active_mask = int.from_bytes(self.nv[c.NV_CHANLIST], "little")

    def replug(self) -> None:
        self._port.replug()

    def move_to(self, position: str) -> None:
        if position not in self.scenario.site.positions:
            known = ", ".join(self.scenario.site.positions)
            raise ValueError(f"no position {position!r} in the scenario (known: {known})")
        self.position = position
        self._note(f"radio simulator: the kit is now {position}")

    # --- what the air holds -------------------------------------------------------------

    def heard(self, net: NetworkSpec) -> int | None:
        """The LQI of ``net`` at the current position in one scan, None when not heard."""
        base = net.lqi.get(self.position)
        if base is None:
            return None
        noise = self.scenario.noise
        if noise.missed_beacon_rate and self._rng.random() < noise.missed_beacon_rate:
            return None
        jitter = self._rng.randint(-noise.lqi_jitter, noise.lqi_jitter) if noise.lqi_jitter else 0
        return max(0, min(255, base + jitter))

    def energy(self, channel: int) -> int:
        spec = self.scenario.energy
        level = spec.by_position.get(self.position, {}).get(
            channel, spec.channels.get(channel, spec.default)
        )
        j = self.scenario.noise.energy_jitter
        if j:
            level += self._rng.randint(-j, j)
        return max(0, min(255, level))

    # --- receive path -----------------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        self._decoder.feed(data)

    def _send(self, frame: MtFrame) -> None:
        self._port.write(encode_frame(frame))

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay_s)
            action()

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, frame: MtFrame) -> None:
        self.received.append(frame)
        if c.Cmd.SYS_RESET_REQ.matches(frame):
            self._reset()
            return
        if not self.awake:
            return  # a stick waiting for its reset answers nothing else
        if frame.ftype != CommandType.SREQ:
            return
        handler = self._handlers().get(frame.key)
        if handler is not None and any(
            c.Cmd[name].matches(frame) for name in self.scenario.stick.unsupported
        ):
            handler = None
        if handler is None:
            self._send(
                MtFrame(
                    CommandType.SRSP,
                    Subsystem.RPC_ERROR,
                    0x00,
                    bytes((c.RpcErrorCode.INVALID_COMMAND_ID, frame.cmd0, frame.cmd_id)),
                )
            )
            return
        handler(frame)

    def _handlers(self) -> dict[tuple[int, int, int], Callable[[MtFrame], None]]:
        return {
            _key(c.Cmd.SYS_PING): self._ping,
            _key(c.Cmd.SYS_VERSION): self._version,
            _key(c.Cmd.SYS_OSAL_NV_WRITE): self._nv_write,
            _key(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ): self._discovery,
            _key(c.Cmd.ZDO_MSG_CALLBACK_REGISTER): self._register,
            _key(c.Cmd.ZDO_STARTUP_FROM_APP): self._startup,
            _key(c.Cmd.AF_DATA_REQUEST_EXT): self._data_request,
        }

    # --- SYS --------------------------------------------------------------------------

    def _reset(self) -> None:
        stick = self.scenario.stick

        def done() -> None:
            self.awake = True
            self.started = False
            self.registered.clear()
            self.active_mask = int.from_bytes(self.nv[c.NV_CHANLIST], "little")
            major, minor, maint = stick.firmware
            ind = c.ResetInd(1, stick.transport_rev, stick.product_id, major, minor, maint)
            self._send(c.Cmd.SYS_RESET_IND.frame(ind.encode()))
            self._note("radio simulator: reset")

        self._later(stick.reset_delay_s, done)

    def _ping(self, frame: MtFrame) -> None:
        self._send(c.Cmd.SYS_PING.response(CAPABILITIES.to_bytes(2, "little")))

    def _version(self, frame: MtFrame) -> None:
        s = self.scenario.stick
        v = c.Version(s.transport_rev, s.product_id, *s.firmware, s.code_revision, 0, 0xFFFFFFFF)
        self._send(c.Cmd.SYS_VERSION.response(v.encode()))

    def _nv_write(self, frame: MtFrame) -> None:
        d = frame.data
        if len(d) < 4 or len(d) != 4 + d[3]:
            self._status(c.Cmd.SYS_OSAL_NV_WRITE, c.MtStatus.INVALID_PARAMETER)
            return
        item, offset, length = struct.unpack_from("<HBB", d)
        value = d[4 : 4 + length]
        old = self.nv.get(item, b"")
        if item == c.NV_CHANLIST and (offset != 0 or length != 4):
            self._status(c.Cmd.SYS_OSAL_NV_WRITE, c.MtStatus.INVALID_PARAMETER)
            return
        self.nv[item] = old[:offset] + value + old[offset + length :]
        self._status(c.Cmd.SYS_OSAL_NV_WRITE, c.MtStatus.SUCCESS)

    def _status(self, cmd: c.Cmd, status: int) -> None:
        self._send(cmd.response(bytes((status,))))

    # --- ZDO ----------------------------------------------------------------------------

    def _register(self, frame: MtFrame) -> None:
        if len(frame.data) != 2:
            self._status(c.Cmd.ZDO_MSG_CALLBACK_REGISTER, c.MtStatus.INVALID_PARAMETER)
            return
        self.registered.add(int.from_bytes(frame.data, "little"))
        self._status(c.Cmd.ZDO_MSG_CALLBACK_REGISTER, c.MtStatus.SUCCESS)

    def _startup(self, frame: MtFrame) -> None:
        if len(frame.data) != 2:
            self._status(c.Cmd.ZDO_STARTUP_FROM_APP, c.MtStatus.INVALID_PARAMETER)
            return
        state = c.StartupState.RESTORED_NETWORK if self.formed else c.StartupState.NEW_NETWORK
        self._send(c.Cmd.ZDO_STARTUP_FROM_APP.response(bytes((state,))))
        if self.started:
            return
        delay = int.from_bytes(frame.data, "little") / 1000

        def coordinator() -> None:
            self._send(
                c.Cmd.ZDO_STATE_CHANGE_IND.frame(bytes((c.DeviceState.STARTING_AS_COORDINATOR,)))
            )
            self._send(
                c.Cmd.ZDO_STATE_CHANGE_IND.frame(bytes((c.DeviceState.STARTED_AS_COORDINATOR,)))
            )
            self.started = True
            self.formed = True

        self._later(delay, coordinator)

    def _discovery(self, frame: MtFrame) -> None:
        if len(frame.data) != 5:
            self._status(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, c.MtStatus.INVALID_PARAMETER)
            return
        mask, duration = struct.unpack("<IB", frame.data)
        if self.started or self.scanning:
            # Z-Stack 3 scans only while it is not running a network of its own.
            self._status(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, c.MtStatus.NWK_INVALID_REQUEST)
            return
        self._status(c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, c.MtStatus.SUCCESS)
        channels = c.mask_channels(mask & self.active_mask)
        per_channel = scan_seconds(1, duration)
        self.scanning = True
        for i, ch in enumerate(channels):
            found = []
            for net in self.scenario.networks:
                if net.channel != ch:
                    continue
                lqi = self.heard(net)
                if lqi is not None:
                    found.append(_beacon(net, lqi))
            if found:
                notify = c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons(found))
                self._later(per_channel * (i + 1), functools.partial(self._send, notify))
        end = per_channel * len(channels) + self.scenario.stick.confirm_delay_s

        def confirm() -> None:
            self.scanning = False
            self._send(c.Cmd.ZDO_NWK_DISCOVERY_CNF.frame(b"\x00"))

        self._later(end, confirm)

    # --- AF: the energy scan through the stick's own ZDO --------------------------------------

    def _data_request(self, frame: MtFrame) -> None:
        d = frame.data
        head = struct.Struct("<B8sBHBHBBBH")
        if len(d) < head.size:
            self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.INVALID_PARAMETER)
            return
        mode, addr, dst_ep, _pan, _src_ep, cluster, tsn, _opt, _radius, length = head.unpack_from(d)
        data = d[head.size :]
        if len(data) != length:
            self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.INVALID_PARAMETER)
            return
        dst = int.from_bytes(addr[:2], "little")
        if not (mode == c.ADDR_MODE_NWK and dst == 0x0000 and dst_ep == c.ZDO_ENDPOINT):
            self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.FAILURE)  # nobody else to reach
            return
        if cluster != c.MGMT_NWK_UPDATE_REQ or len(data) < 7:
            self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.INVALID_PARAMETER)
            return
        if not self.started:
            # Real firmware sends nothing on a network it has not started.
            self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.NWK_INVALID_REQUEST)
            return
        zdo_tsn, mask, duration, count = struct.unpack_from("<BIBB", data)
        self._status(c.Cmd.AF_DATA_REQUEST_EXT, c.MtStatus.SUCCESS)
        self._send(c.Cmd.AF_DATA_CONFIRM.frame(bytes((0, c.ZDO_ENDPOINT, tsn))))
        channels = c.mask_channels(mask)
        airtime = scan_seconds(len(channels), min(duration, 5)) * max(count, 1)

        def report() -> None:
            if c.MGMT_NWK_UPDATE_NOTIFY not in self.registered:
                return  # the answer goes to Z-Stack's own ZDO: the host never sees it
            notify = c.NwkUpdateNotify(0, channels, 0, 0, tuple(self.energy(ch) for ch in channels))
            msg = c.ZdoMsg(
                0x0000, False, c.MGMT_NWK_UPDATE_NOTIFY, 0, zdo_tsn, 0x0000, notify.encode()
            )
            self._send(c.Cmd.ZDO_MSG_CB_INCOMING.frame(msg.encode()))

        self._later(airtime + self.scenario.stick.confirm_delay_s, report)

    # --- noise on the line --------------------------------------------------------------------

    async def _line_noise(self) -> None:
        every = self.scenario.noise.line_garbage_every_s
        while True:
            await asyncio.sleep(every)
            junk = bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 6)))
            junk = junk.replace(b"\xfe", b"\x55")
            if self.scenario.noise.false_length:
                junk += bytes((0xFE, self._rng.randint(60, 250)))
            self._port.write(junk)


def _key(cmd: c.Cmd) -> tuple[int, int, int]:
    return int(cmd.ftype), int(cmd.subsystem), cmd.cmd_id


def _beacon(net: NetworkSpec, lqi: int) -> c.Beacon:
    return c.Beacon(
        src=net.src,
        pan_id=net.pan_id,
        channel=net.channel,
        permit_joining=net.permit_joining,
        router_capacity=1,
        device_capacity=1,
        protocol_version=net.protocol_version,
        stack_profile=net.stack_profile,
        lqi=lqi,
        depth=net.depth,
        update_id=net.update_id,
        extended_pan_id=net.extended_pan_id,
    )
