"""The MT commands the survey needs, as typed payloads: frames <-> radio facts.

Each request knows its frame; each answer or callback decodes from a frame's data
and raises ``PayloadError`` when the data is shorter than its layout (a frame of
the right command with a broken payload is dropped, never half-read). Numbers are
little-endian as in every MT command. Extended PAN IDs travel least significant
byte first on the wire (as zigpy serialises them) and are held here as ``Eui64``
in label order, most significant first, the form the hub's LSP uses: compare
them only in that one form.

Layouts follow TI's Z-Stack Monitor and Test API for Z-Stack 3.x.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.znp.frames import CommandType, MtFrame, Subsystem

FIRST_CHANNEL = 11
LAST_CHANNEL = 26
ALL_CHANNELS = tuple(range(FIRST_CHANNEL, LAST_CHANNEL + 1))

# NV item holding the channel list the stack uses after its next reset.
NV_CHANLIST = 0x0084
# ZDO clusters of the energy scan (Zigbee spec 2.4.3.3.9 and 2.4.4.4.9).
MGMT_NWK_UPDATE_REQ = 0x0038
MGMT_NWK_UPDATE_NOTIFY = 0x8038
ZDO_ENDPOINT = 0
ADDR_MODE_NWK = 0x02
BEACON_LEN = 21


class PayloadError(ValueError):
    """A frame's data does not fit its command's layout."""


class ResetType(enum.IntEnum):
    HARD = 0
    SOFT = 1


class MtStatus(enum.IntEnum):
    SUCCESS = 0x00
    FAILURE = 0x01
    INVALID_PARAMETER = 0x02
    NV_ITEM_UNINIT = 0x09
    NWK_INVALID_REQUEST = 0xC2
    # Z-Stack's ZMacNoBeacon: the scan heard no beacon at all. A network discovery
    # that found nothing is confirmed with it.
    MAC_NO_BEACON = 0xEA


class StartupState(enum.IntEnum):
    """ZDO.StartupFromApp's answer: whether the stack brought a network up, and how."""

    RESTORED_NETWORK = 0x00
    NEW_NETWORK = 0x01
    NOT_STARTED = 0x02


class DeviceState(enum.IntEnum):
    """ZDO states (ZDO.StateChangeInd), the ones the survey cares about."""

    HOLD = 0x00
    INIT = 0x01
    STARTING_AS_COORDINATOR = 0x08
    STARTED_AS_COORDINATOR = 0x09


class RpcErrorCode(enum.IntEnum):
    INVALID_SUBSYSTEM = 0x01
    INVALID_COMMAND_ID = 0x02
    INVALID_PARAMETER = 0x03
    INVALID_LENGTH = 0x04


# (type, subsystem, id) of every command, by the names TI and zigpy-znp give them.
class Cmd(enum.Enum):
    SYS_RESET_REQ = (CommandType.AREQ, Subsystem.SYS, 0x00)
    SYS_PING = (CommandType.SREQ, Subsystem.SYS, 0x01)
    SYS_VERSION = (CommandType.SREQ, Subsystem.SYS, 0x02)
    SYS_OSAL_NV_WRITE = (CommandType.SREQ, Subsystem.SYS, 0x09)
    SYS_RESET_IND = (CommandType.AREQ, Subsystem.SYS, 0x80)
    AF_DATA_REQUEST_EXT = (CommandType.SREQ, Subsystem.AF, 0x02)
    AF_DATA_CONFIRM = (CommandType.AREQ, Subsystem.AF, 0x80)
    ZDO_NETWORK_DISCOVERY_REQ = (CommandType.SREQ, Subsystem.ZDO, 0x26)
    ZDO_MSG_CALLBACK_REGISTER = (CommandType.SREQ, Subsystem.ZDO, 0x3E)
    ZDO_STARTUP_FROM_APP = (CommandType.SREQ, Subsystem.ZDO, 0x40)
    ZDO_STATE_CHANGE_IND = (CommandType.AREQ, Subsystem.ZDO, 0xC0)
    ZDO_BEACON_NOTIFY_IND = (CommandType.AREQ, Subsystem.ZDO, 0xC5)
    ZDO_NWK_DISCOVERY_CNF = (CommandType.AREQ, Subsystem.ZDO, 0xC7)
    ZDO_MSG_CB_INCOMING = (CommandType.AREQ, Subsystem.ZDO, 0xFF)

    @property
    def subsystem(self) -> Subsystem:
        return self.value[1]

    @property
    def cmd_id(self) -> int:
        return self.value[2]

    @property
    def ftype(self) -> CommandType:
        return self.value[0]

    def frame(self, data: bytes = b"") -> MtFrame:
        """The frame of this command (a request, or a callback the stick sends)."""
        return MtFrame(self.ftype, self.subsystem, self.cmd_id, data)

    def response(self, data: bytes = b"") -> MtFrame:
        """The SRSP frame answering this SREQ."""
        return MtFrame(CommandType.SRSP, self.subsystem, self.cmd_id, data)

    def matches(self, frame: MtFrame) -> bool:
        return frame.key == (int(self.ftype), int(self.subsystem), self.cmd_id)

    def answered_by(self, frame: MtFrame) -> bool:
        return frame.key == (int(CommandType.SRSP), int(self.subsystem), self.cmd_id)


def _need(data: bytes, n: int, what: str) -> None:
    if len(data) < n:
        raise PayloadError(f"{what}: {len(data)} bytes, at least {n} needed")


# --- channels ------------------------------------------------------------------


def channel_mask(channels: Iterable[int]) -> int:
    """The 32-bit mask with bit N set for channel N (11..26)."""
    mask = 0
    for ch in channels:
        if not FIRST_CHANNEL <= ch <= LAST_CHANNEL:
            raise ValueError(f"channel {ch} is not a 2.4 GHz Zigbee channel (11..26)")
        mask |= 1 << ch
    return mask


def mask_channels(mask: int) -> tuple[int, ...]:
    return tuple(ch for ch in ALL_CHANNELS if mask & (1 << ch))


def ext_pan_to_wire(ext_pan: Eui64) -> bytes:
    return ext_pan.raw[::-1]


def ext_pan_from_wire(raw: bytes) -> Eui64:
    return Eui64(bytes(raw[::-1]))


# --- SYS -------------------------------------------------------------------------


def reset_req(kind: ResetType = ResetType.SOFT) -> MtFrame:
    return Cmd.SYS_RESET_REQ.frame(bytes((kind,)))


def ping_req() -> MtFrame:
    return Cmd.SYS_PING.frame()


def version_req() -> MtFrame:
    return Cmd.SYS_VERSION.frame()


def nv_write_req(item_id: int, value: bytes, offset: int = 0) -> MtFrame:
    if len(value) > 0xFF - 4:
        raise ValueError(f"an NV value of {len(value)} bytes does not fit one write")
    return Cmd.SYS_OSAL_NV_WRITE.frame(struct.pack("<HBB", item_id, offset, len(value)) + value)


def decode_ping(data: bytes) -> int:
    """The stick's MT capabilities bitmap."""
    _need(data, 2, "SYS.Ping response")
    return int.from_bytes(data[:2], "little")


@dataclass(frozen=True, slots=True)
class Version:
    """SYS.Version: Z-Stack 3.x adds a code revision and bootloader fields."""

    transport_rev: int
    product_id: int
    major: int
    minor: int
    maint: int
    code_revision: int | None = None
    bootloader_build_type: int | None = None
    bootloader_revision: int | None = None

    @classmethod
    def decode(cls, data: bytes) -> Version:
        _need(data, 5, "SYS.Version response")
        code = int.from_bytes(data[5:9], "little") if len(data) >= 9 else None
        build = data[9] if len(data) >= 10 else None
        boot = int.from_bytes(data[10:14], "little") if len(data) >= 14 else None
        t, p, major, minor, maint = data[:5]
        return cls(t, p, major, minor, maint, code, build, boot)

    def encode(self) -> bytes:
        out = bytes((self.transport_rev, self.product_id, self.major, self.minor, self.maint))
        if self.code_revision is not None:
            out += self.code_revision.to_bytes(4, "little")
            if self.bootloader_build_type is not None:
                out += bytes((self.bootloader_build_type,))
                if self.bootloader_revision is not None:
                    out += self.bootloader_revision.to_bytes(4, "little")
        return out

    @property
    def label(self) -> str:
        build = f"Z-Stack build {self.code_revision}" if self.code_revision else "Z-Stack"
        return f"{build} (MT {self.major}.{self.minor}.{self.maint}, product {self.product_id})"


@dataclass(frozen=True, slots=True)
class ResetInd:
    reason: int
    transport_rev: int
    product_id: int
    major: int
    minor: int
    maint: int

    @classmethod
    def decode(cls, data: bytes) -> ResetInd:
        _need(data, 6, "SYS.ResetInd")
        return cls(*data[:6])

    def encode(self) -> bytes:
        return bytes(
            (self.reason, self.transport_rev, self.product_id, self.major, self.minor, self.maint)
        )


def decode_status(data: bytes, what: str) -> int:
    _need(data, 1, what)
    return data[0]


# --- ZDO -------------------------------------------------------------------------


def network_discovery_req(channels: Iterable[int], scan_duration: int) -> MtFrame:
    if not 0 <= scan_duration <= 14:
        raise ValueError(f"scan duration exponent {scan_duration} out of range 0..14")
    return Cmd.ZDO_NETWORK_DISCOVERY_REQ.frame(
        struct.pack("<IB", channel_mask(channels), scan_duration)
    )


def msg_callback_register_req(cluster_id: int) -> MtFrame:
    return Cmd.ZDO_MSG_CALLBACK_REGISTER.frame(struct.pack("<H", cluster_id))


def startup_from_app_req(start_delay_ms: int = 100) -> MtFrame:
    return Cmd.ZDO_STARTUP_FROM_APP.frame(struct.pack("<H", start_delay_ms))


@dataclass(frozen=True, slots=True)
class Beacon:
    """One beacon heard in a network discovery."""

    src: int
    pan_id: int
    channel: int
    permit_joining: bool
    router_capacity: int
    device_capacity: int
    protocol_version: int
    stack_profile: int
    lqi: int
    depth: int
    update_id: int
    extended_pan_id: Eui64

    _LAYOUT = struct.Struct("<HHBBBBBBBBB")

    @classmethod
    def decode(cls, data: bytes) -> Beacon:
        _need(data, BEACON_LEN, "beacon")
        f = cls._LAYOUT.unpack_from(data)
        return cls(
            src=f[0],
            pan_id=f[1],
            channel=f[2],
            permit_joining=bool(f[3]),
            router_capacity=f[4],
            device_capacity=f[5],
            protocol_version=f[6],
            stack_profile=f[7],
            lqi=f[8],
            depth=f[9],
            update_id=f[10],
            extended_pan_id=ext_pan_from_wire(data[13:21]),
        )

    def encode(self) -> bytes:
        return self._LAYOUT.pack(
            self.src,
            self.pan_id,
            self.channel,
            int(self.permit_joining),
            self.router_capacity,
            self.device_capacity,
            self.protocol_version,
            self.stack_profile,
            self.lqi,
            self.depth,
            self.update_id,
        ) + ext_pan_to_wire(self.extended_pan_id)


def decode_beacons(data: bytes) -> tuple[Beacon, ...]:
    """ZDO.BeaconNotifyInd: a count, then that many beacons."""
    _need(data, 1, "ZDO.BeaconNotifyInd")
    count = data[0]
    _need(data, 1 + count * BEACON_LEN, f"ZDO.BeaconNotifyInd with {count} beacon(s)")
    return tuple(
        Beacon.decode(data[1 + i * BEACON_LEN : 1 + (i + 1) * BEACON_LEN]) for i in range(count)
    )


def encode_beacons(beacons: Iterable[Beacon]) -> bytes:
    items = list(beacons)
    return bytes((len(items),)) + b"".join(b.encode() for b in items)


@dataclass(frozen=True, slots=True)
class ZdoMsg:
    """ZDO.MsgCbIncoming: a ZDO message for a registered cluster (TSN split out)."""

    src: int
    is_broadcast: bool
    cluster_id: int
    security_use: int
    tsn: int
    mac_dst: int
    data: bytes

    _HEAD = struct.Struct("<HBHBBH")

    @classmethod
    def decode(cls, data: bytes) -> ZdoMsg:
        _need(data, cls._HEAD.size, "ZDO.MsgCbIncoming")
        src, bcast, cluster, sec, tsn, mac_dst = cls._HEAD.unpack_from(data)
        return cls(src, bool(bcast), cluster, sec, tsn, mac_dst, bytes(data[cls._HEAD.size :]))

    def encode(self) -> bytes:
        head = self._HEAD.pack(
            self.src,
            int(self.is_broadcast),
            self.cluster_id,
            self.security_use,
            self.tsn,
            self.mac_dst,
        )
        return head + self.data


# --- AF (energy scan through the stick's own ZDO) ----------------------------------


def mgmt_nwk_update_req(
    tsn: int, channels: Iterable[int], scan_duration: int, scan_count: int
) -> bytes:
    """The ZDO payload of Mgmt_NWK_Update_req for an energy scan (duration 0..5)."""
    if not 0 <= scan_duration <= 5:
        raise ValueError(f"energy scan duration exponent {scan_duration} out of range 0..5")
    if not 1 <= scan_count <= 5:
        raise ValueError(f"energy scan count {scan_count} out of range 1..5")
    return struct.pack("<BIBB", tsn, channel_mask(channels), scan_duration, scan_count)


def af_data_request_ext(
    *,
    dst_nwk: int,
    dst_endpoint: int,
    src_endpoint: int,
    cluster_id: int,
    tsn: int,
    data: bytes,
    options: int = 0,
    radius: int = 30,
    dst_pan_id: int = 0x0000,
) -> MtFrame:
    """AF.DataRequestExt to a short (NWK) address: mode, address padded to 8 bytes, ..."""
    addr = struct.pack("<BH", ADDR_MODE_NWK, dst_nwk) + bytes(6)
    head = struct.pack(
        "<BHBHBBBH",
        dst_endpoint,
        dst_pan_id,
        src_endpoint,
        cluster_id,
        tsn,
        options,
        radius,
        len(data),
    )
    return Cmd.AF_DATA_REQUEST_EXT.frame(addr + head + data)


@dataclass(frozen=True, slots=True)
class DataConfirm:
    status: int
    endpoint: int
    tsn: int

    @classmethod
    def decode(cls, data: bytes) -> DataConfirm:
        _need(data, 3, "AF.DataConfirm")
        return cls(data[0], data[1], data[2])


@dataclass(frozen=True, slots=True)
class NwkUpdateNotify:
    """Mgmt_NWK_Update_notify (ZDO 0x8038) without its TSN: energy per scanned channel."""

    status: int
    scanned_channels: tuple[int, ...]
    total_transmissions: int
    transmission_failures: int
    energies: tuple[int, ...]

    _HEAD = struct.Struct("<BIHHB")

    @classmethod
    def decode(cls, data: bytes) -> NwkUpdateNotify:
        _need(data, cls._HEAD.size, "Mgmt_NWK_Update_notify")
        status, mask, total, failures, count = cls._HEAD.unpack_from(data)
        _need(data, cls._HEAD.size + count, f"Mgmt_NWK_Update_notify with {count} value(s)")
        energies = tuple(data[cls._HEAD.size : cls._HEAD.size + count])
        return cls(status, mask_channels(mask), total, failures, energies)

    def encode(self) -> bytes:
        head = self._HEAD.pack(
            self.status,
            channel_mask(self.scanned_channels),
            self.total_transmissions,
            self.transmission_failures,
            len(self.energies),
        )
        return head + bytes(self.energies)

    def by_channel(self) -> dict[int, int]:
        """Energy per channel; values beyond the scanned channels are ignored."""
        return dict(zip(self.scanned_channels, self.energies, strict=False))
