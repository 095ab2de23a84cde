"""The host side of ZNP: typed radio calls over MT, for the RF survey.

Frames -> radio facts. A ``FramedClient`` (the project's one reopen-on-unplug
port) with the MT ``FrameDecoder`` on it. MT allows one SREQ in flight, so requests are
serialised; each one's listener is registered before its bytes are written, so
an instant SRSP is never missed, and it ends with the SRSP, an RPC error, a
timeout or the port's loss. AREQ callbacks go to listeners registered for them
(again before the request that causes them is written).

The survey operations wrap each command in what real Z-Stack 3.x firmware needs
around it: a beacon scan writes the channel list to NV and soft-resets the stick
(the list is read at reset) before ``ZDO.NetworkDiscoveryReq``; an energy scan
registers the ZDO callback for Mgmt_NWK_Update_notify and starts the stick's
network before it sends Mgmt_NWK_Update_req to itself through AF. A stick that
does not answer its first ping is reset once and asked again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.framed_client import FramedClient
from gatewayd_drivers.serial_link import LinkDown, SerialSettings
from gatewayd_drivers.znp import commands as c
from gatewayd_drivers.znp.errors import (
    ZnpCommandError,
    ZnpDisconnected,
    ZnpError,
    ZnpStatusError,
    ZnpTimeout,
)
from gatewayd_drivers.znp.frames import CommandType, FrameDecoder, MtFrame, Subsystem, encode_frame

_log = logging.getLogger(__name__)

T = TypeVar("T")

# IEEE 802.15.4: one scan of a channel lasts aBaseSuperframeDuration * (2^n + 1) symbols,
# 960 symbols of 16 us each at 2.4 GHz.
_SUPERFRAME_S = 960 * 16e-6


def scan_seconds(channels: int, scan_duration: int) -> float:
    """How long the stick spends scanning ``channels`` channels at exponent ``scan_duration``."""
    return float(channels * _SUPERFRAME_S * (2**scan_duration + 1))


@dataclass(frozen=True, slots=True)
class ZnpTimers:
    """Timeouts of the radio protocol; they always run in real time."""

    sreq_timeout_s: float = 6.0  # Z-Stack answers at once; a busy stick within a few seconds
    first_ping_s: float = 1.0  # short: a stick waiting for a reset stays silent
    reset_timeout_s: float = 6.0  # SYS.ResetInd after SYS.ResetReq
    startup_timeout_s: float = 15.0  # ZDO.StateChangeInd to coordinator after StartupFromApp
    confirm_margin_s: float = 10.0  # beyond the scan's own airtime, for a slow confirm


@dataclass(frozen=True, slots=True)
class StickInfo:
    """Who the radio is: from SYS.Ping and SYS.Version."""

    capabilities: int
    version: c.Version
    needed_reset: bool


@dataclass
class ZnpStats:
    requests: int = 0
    timeouts: int = 0
    rpc_errors: int = 0
    callbacks: int = 0
    malformed: int = 0
    frame_errors: int = 0
    resets: int = 0
    discards: dict[str, int] = field(default_factory=dict)


class _LinkLostMark:
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Listener:
    """Callback frames matching ``want``, queued from the moment it was created."""

    def __init__(self, client: ZnpClient, want: Callable[[MtFrame], bool]) -> None:
        self._client = client
        self.want = want
        self._queue: asyncio.Queue[MtFrame | _LinkLostMark] = asyncio.Queue()

    def _put(self, item: MtFrame | _LinkLostMark) -> None:
        self._queue.put_nowait(item)

    async def get(self, timeout_s: float, what: str) -> MtFrame:
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._queue.get()
        except TimeoutError:
            self._client.stats.timeouts += 1
            raise ZnpTimeout(f"the radio sent no {what} within {timeout_s:.1f} s") from None
        if isinstance(item, _LinkLostMark):
            raise ZnpDisconnected(f"radio disconnected while waiting for {what}: {item.reason}")
        return item

    def close(self) -> None:
        self._client._listeners.discard(self)

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class _Pending:
    cmd: c.Cmd
    future: asyncio.Future[MtFrame]


class ZnpClient(FramedClient[FrameDecoder]):
    """Talks to one Z-Stack ZNP stick over its serial port."""

    def __init__(
        self,
        port: str,
        *,
        name: str | None = None,
        timers: ZnpTimers | None = None,
        settings: SerialSettings | None = None,
        backoff: BackoffSettings | None = None,
        fail_fast_when_busy: bool = False,
    ) -> None:
        super().__init__(
            port,
            FrameDecoder(self._on_frame),
            name=name,
            settings=settings,
            backoff=backoff,
            fail_fast_when_busy=fail_fast_when_busy,
        )
        self.timers = timers or ZnpTimers()
        self.stats = ZnpStats()
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._listeners: set[Listener] = set()
        self._network_started = False
        self._callbacks_registered: set[int] = set()
        self._tsn = 0

    @property
    def reconnects(self) -> int:
        return self._link.counters.reconnects

    def listen(self, want: Callable[[MtFrame], bool]) -> Listener:
        """Queue every callback ``want`` accepts from now on; close it when done."""
        listener = Listener(self, want)
        self._listeners.add(listener)
        return listener

    def listen_for(self, *cmds: c.Cmd) -> Listener:
        return self.listen(lambda f: any(cmd.matches(f) for cmd in cmds))

    # --- plain commands ------------------------------------------------------------

    async def request(self, frame: MtFrame, timeout_s: float | None = None) -> MtFrame:
        """Send one SREQ (or AREQ) frame; for an SREQ return its SRSP frame."""
        cmd = _cmd_of(frame)
        async with self._lock:
            if not self.connected:
                raise ZnpDisconnected(f"radio {self.name} is not connected ({self._why_down()})")
            self.stats.requests += 1
            if frame.ftype != CommandType.SREQ:
                self._write(frame)
                return frame
            loop = asyncio.get_running_loop()
            # Registered before the write so that an instant answer is never missed.
            pending = _Pending(cmd, loop.create_future())
            self._pending = pending
            wait = timeout_s if timeout_s is not None else self.timers.sreq_timeout_s
            try:
                self._write(frame)
                async with asyncio.timeout(wait):
                    return await pending.future
            except TimeoutError:
                self.stats.timeouts += 1
                raise ZnpTimeout(
                    f"the radio did not answer {cmd.name} within {wait:.1f} s"
                ) from None
            finally:
                self._pending = None
                if not pending.future.done():
                    pending.future.cancel()

    async def _status_request(self, frame: MtFrame, what: str) -> None:
        rsp = await self.request(frame)
        status = self._decode(rsp, lambda d: c.decode_status(d, what))
        if status != c.MtStatus.SUCCESS:
            raise ZnpStatusError(what, status)

    async def ping(self, timeout_s: float | None = None) -> int:
        rsp = await self.request(c.ping_req(), timeout_s)
        return self._decode(rsp, c.decode_ping)

    async def version(self) -> c.Version:
        return self._decode(await self.request(c.version_req()), c.Version.decode)

    async def reset(self, kind: c.ResetType = c.ResetType.SOFT) -> c.ResetInd:
        """Reset the stick and wait for its SYS.ResetInd."""
        with self.listen_for(c.Cmd.SYS_RESET_IND) as ind:
            await self.request(c.reset_req(kind))
            frame = await ind.get(self.timers.reset_timeout_s, "SYS.ResetInd after a reset")
        self.stats.resets += 1
        self._network_started = False
        self._callbacks_registered.clear()
        return self._decode(frame, c.ResetInd.decode)

    async def identify(self) -> StickInfo:
        """Ping (resetting a silent stick once) and read the firmware version."""
        needed_reset = False
        try:
            caps = await self.ping(self.timers.first_ping_s)
        except ZnpTimeout:
            _log.info("radio silent on its first ping; resetting it link=%s", self.name)
            needed_reset = True
            await self.reset()
            caps = await self.ping()
        return StickInfo(caps, await self.version(), needed_reset)

    async def nv_write(self, item_id: int, value: bytes) -> None:
        await self._status_request(c.nv_write_req(item_id, value), f"NV write of {item_id:#06x}")

    # --- the survey's scans ----------------------------------------------------------

    async def network_discovery(
        self, channels: Iterable[int], scan_duration: int = 3
    ) -> list[c.Beacon]:
        """Every beacon heard on ``channels`` until the stick confirms the scan's end."""
        chans = tuple(channels)
        await self.nv_write(c.NV_CHANLIST, c.channel_mask(chans).to_bytes(4, "little"))
        # Z-Stack reads the channel list from NV at reset, not at the discovery request.
        await self.reset(c.ResetType.SOFT)
        timeout = scan_seconds(len(chans), scan_duration) + self.timers.confirm_margin_s
        beacons: list[c.Beacon] = []
        with self.listen_for(c.Cmd.ZDO_BEACON_NOTIFY_IND, c.Cmd.ZDO_NWK_DISCOVERY_CNF) as cbs:
            await self._status_request(
                c.network_discovery_req(chans, scan_duration), "ZDO.NetworkDiscoveryReq"
            )
            while True:
                frame = await cbs.get(timeout, "ZDO.NwkDiscoveryCnf")
                if c.Cmd.ZDO_NWK_DISCOVERY_CNF.matches(frame):
                    status = self._decode(frame, lambda d: c.decode_status(d, "NwkDiscoveryCnf"))
                    # Hearing no network at all is an answer too, not a failed scan.
                    if status not in (c.MtStatus.SUCCESS, c.MtStatus.MAC_NO_BEACON):
                        raise ZnpStatusError("the network discovery", status)
                    return beacons
                try:
                    beacons.extend(c.decode_beacons(frame.data))
                except c.PayloadError as exc:
                    self.stats.malformed += 1
                    _log.warning("malformed beacon notification dropped: %s", exc)

    async def start_network(self) -> None:
        """Bring the stick's network up (an energy scan needs it) and wait until it is."""
        if self._network_started:
            return
        want = c.DeviceState.STARTED_AS_COORDINATOR
        with self.listen(
            lambda f: c.Cmd.ZDO_STATE_CHANGE_IND.matches(f) and f.data[:1] == bytes((want,))
        ) as states:
            rsp = await self.request(c.startup_from_app_req(100))
            state = self._decode(rsp, lambda d: c.decode_status(d, "ZDO.StartupFromApp"))
            # NOT_STARTED, or a state this driver does not know, means no network to wait for.
            if state not in (c.StartupState.RESTORED_NETWORK, c.StartupState.NEW_NETWORK):
                raise ZnpStatusError("the network start", state)
            await states.get(self.timers.startup_timeout_s, "network start (coordinator state)")
        self._network_started = True

    async def register_zdo_callback(self, cluster_id: int) -> None:
        if cluster_id in self._callbacks_registered:
            return
        await self._status_request(
            c.msg_callback_register_req(cluster_id), f"ZDO callback for {cluster_id:#06x}"
        )
        self._callbacks_registered.add(cluster_id)

    async def energy_scan(
        self, channels: Iterable[int], scan_duration: int = 3, scan_count: int = 1
    ) -> dict[int, int]:
        """Energy (0..255, higher is busier) per channel, from the stick's own ZDO."""
        chans = tuple(channels)
        await self.register_zdo_callback(c.MGMT_NWK_UPDATE_NOTIFY)
        await self.start_network()
        tsn = self._next_tsn()
        payload = c.mgmt_nwk_update_req(tsn, chans, scan_duration, scan_count)
        timeout = (
            scan_seconds(len(chans), scan_duration) * scan_count + self.timers.confirm_margin_s
        )
        with self.listen(
            lambda f: c.Cmd.ZDO_MSG_CB_INCOMING.matches(f) and _zdo_answer(f, tsn)
        ) as answers:
            await self._status_request(
                c.af_data_request_ext(
                    dst_nwk=0x0000,
                    dst_endpoint=c.ZDO_ENDPOINT,
                    src_endpoint=c.ZDO_ENDPOINT,
                    cluster_id=c.MGMT_NWK_UPDATE_REQ,
                    tsn=tsn,
                    data=payload,
                ),
                "AF.DataRequestExt (Mgmt_NWK_Update_req)",
            )
            frame = await answers.get(timeout, "Mgmt_NWK_Update_notify")
        msg = self._decode(frame, c.ZdoMsg.decode)
        notify = self._decode_bytes(msg.data, c.NwkUpdateNotify.decode)
        if notify.status != c.MtStatus.SUCCESS:
            raise ZnpStatusError("the energy scan", notify.status)
        return notify.by_channel()

    # --- internals -------------------------------------------------------------------

    def _next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) % 256
        return self._tsn

    def _decode(self, frame: MtFrame, decode: Callable[[bytes], T]) -> T:
        return self._decode_bytes(frame.data, decode)

    def _decode_bytes(self, data: bytes, decode: Callable[[bytes], T]) -> T:
        try:
            return decode(data)
        except c.PayloadError as exc:
            self.stats.malformed += 1
            raise ZnpError(f"malformed answer from the radio: {exc}") from None

    def _write(self, frame: MtFrame) -> None:
        try:
            self._link.write(encode_frame(frame))
        except LinkDown as exc:
            raise ZnpDisconnected(str(exc)) from None

    # --- receive path (called from data_received: must never raise) ------------------

    def _on_frame(self, frame: MtFrame) -> None:
        if frame.ftype == CommandType.SRSP:
            self._on_srsp(frame)
        elif frame.ftype == CommandType.AREQ:
            self.stats.callbacks += 1
            for listener in list(self._listeners):
                try:
                    wanted = listener.want(frame)
                except Exception:
                    _log.exception("listener predicate failed")
                    continue
                if wanted:
                    listener._put(frame)

    def _on_srsp(self, frame: MtFrame) -> None:
        pending = self._pending
        if pending is None or pending.future.done():
            return
        if frame.subsystem == Subsystem.RPC_ERROR and frame.cmd_id == 0 and len(frame.data) >= 3:
            req = pending.cmd.frame()
            if frame.data[1] == req.cmd0 and frame.data[2] == req.cmd_id:
                self.stats.rpc_errors += 1
                pending.future.set_exception(
                    ZnpCommandError(
                        f"the radio does not support {pending.cmd.name} "
                        f"(MT RPC error {frame.data[0]:#04x})"
                    )
                )
            return
        if pending.cmd.answered_by(frame):
            pending.future.set_result(frame)

    # --- the port (FramedClient hooks) ----------------------------------------------

    def _link_down(self, reason: str) -> None:
        # A replugged stick has lost its RAM state: start and register again.
        self._network_started = False
        self._callbacks_registered.clear()

    def _fail_waiting(self, reason: str) -> None:
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                ZnpDisconnected(f"radio {self.name} disconnected during request: {reason}")
            )
        for listener in list(self._listeners):
            listener._put(_LinkLostMark(reason))

    def snapshot_discards(self) -> dict[str, int]:
        self.stats.frame_errors = self._decoder.stats.errors
        self.stats.discards = {r.value: n for r, n in self._decoder.stats.discarded.items()}
        return self.stats.discards


def _cmd_of(frame: MtFrame) -> c.Cmd:
    for cmd in c.Cmd:
        if cmd.matches(frame):
            return cmd
    raise ValueError(f"not a command this client sends: {frame}")


def _zdo_answer(frame: MtFrame, tsn: int) -> bool:
    try:
        msg = c.ZdoMsg.decode(frame.data)
    except c.PayloadError:
        return False
    return msg.cluster_id == c.MGMT_NWK_UPDATE_NOTIFY and msg.tsn == tsn
