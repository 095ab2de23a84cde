"""Typed LSP payloads: commands, responses, records and events (spec sections 4-6).

Every record encodes and decodes both ways, so the host client and the hub
simulator share one definition. Decoding follows the spec's tolerance rules:
a payload shorter than its layout raises ``PayloadError``; bytes beyond the
layout are ignored; enumerated values not listed in the spec pass through as
plain ints. Each event is declared once, in the ``EventCode`` table, with its
CMD and its record; both lookups (CMD -> record, record -> CMD) come from it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Self, TypeVar

from gatewayd_drivers.commshub.eui64 import Eui64


class PayloadError(ValueError):
    """A payload shorter than its layout, or a field the layout cannot hold."""


class Cmd(enum.IntEnum):
    PING = 0x0001
    GET_INFO = 0x0002
    GET_WAN_STATUS = 0x0010
    WAN_RECONNECT = 0x0011
    GET_HAN_STATUS = 0x0020
    DEVICE_LOG_ADD = 0x0021
    DEVICE_LOG_REMOVE = 0x0022
    DEVICE_LOG_READ = 0x0023


class Status(enum.IntEnum):
    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    BAD_LENGTH = 0x02
    BAD_PARAMETER = 0x03
    BUSY = 0x04
    NOT_FOUND = 0x05
    DEVICE_LOG_FULL = 0x06


class HwVariant(enum.IntEnum):
    SINGLE_BAND = 0x01
    DUAL_BAND = 0x02


class WanVariant(enum.IntEnum):
    CELLULAR = 0x01
    CELLULAR_MESH = 0x02
    LONG_RANGE_RADIO = 0x03
    CELLULAR_4G = 0x04


class CspRegion(enum.IntEnum):
    NORTH = 0x01
    CENTRAL = 0x02
    SOUTH = 0x03


class DeviceType(enum.IntEnum):
    ESME = 0x01
    GSME = 0x02
    IHD = 0x03
    PPMID = 0x04
    HCALCS = 0x05
    CAD = 0x06
    HHT = 0x07


class WanState(enum.IntEnum):
    OFF = 0
    SEARCHING = 1
    REGISTERED = 2
    CONNECTED = 3
    FAULT = 4


class RegState(enum.IntEnum):
    """3GPP TS 27.007 +CREG <stat>."""

    NOT_REGISTERED = 0
    REGISTERED_HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    REGISTERED_ROAMING = 5


class HanState(enum.IntEnum):
    DOWN = 0
    UP = 1


class JoinState(enum.IntEnum):
    WHITELISTED = 0
    JOINING = 1
    JOINED = 2
    JOIN_FAILED = 3
    LOST = 4


class Band(enum.IntEnum):
    GHZ_2_4 = 0
    MHZ_868 = 1


class JoinFailReason(enum.IntEnum):
    WINDOW_EXPIRED = 0
    KEY_ESTABLISHMENT_FAILED = 1


class StartReason(enum.IntEnum):
    POWER_ON = 0
    WATCHDOG = 1
    REMOTE_RESTART = 2


E = TypeVar("E", bound=enum.IntEnum)

RSSI_UNKNOWN = 127
NEVER = 0xFFFFFFFF
NO_SUBGHZ_CHANNEL = 0xFF


def as_enum(cls: type[E], value: int) -> E | int:
    """``cls(value)`` when listed, else the plain number (spec: pass unknowns on)."""
    try:
        return cls(value)
    except ValueError:
        return value


def enum_name(value: enum.IntEnum | int) -> str:
    """A readable name for an enum value or an unlisted number."""
    if isinstance(value, enum.IntEnum):
        return value.name
    return f"UNKNOWN({value})"


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise PayloadError(f"{what} needs {size} bytes, got {len(payload)}")


def _eui(payload: bytes, offset: int = 0) -> Eui64:
    return Eui64(bytes(payload[offset : offset + 8]))


# --- records -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HubInfo:
    eui64: Eui64
    hw_variant: HwVariant | int
    wan_variant: WanVariant | int
    csp_region: CspRegion | int
    firmware: str
    uptime_s: int

    def encode(self) -> bytes:
        fw = self.firmware.encode("ascii")
        if len(fw) > 255:
            raise PayloadError("firmware string longer than 255 bytes")
        return (
            self.eui64.raw
            + bytes([int(self.hw_variant), int(self.wan_variant), int(self.csp_region), len(fw)])
            + fw
            + struct.pack(">I", self.uptime_s)
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, 12, "GET_INFO response")
        fw_len = payload[11]
        _need(payload, 12 + fw_len + 4, "GET_INFO response")
        fw = payload[12 : 12 + fw_len].decode("ascii", errors="replace")
        (uptime,) = struct.unpack_from(">I", payload, 12 + fw_len)
        return cls(
            eui64=_eui(payload),
            hw_variant=as_enum(HwVariant, payload[8]),
            wan_variant=as_enum(WanVariant, payload[9]),
            csp_region=as_enum(CspRegion, payload[10]),
            firmware=fw,
            uptime_s=uptime,
        )


@dataclass(frozen=True, slots=True)
class WanStatus:
    state: WanState | int
    reg_state: RegState | int
    rssi_dbm: int | None  # None when the hub reports 127 (unknown)
    seconds_in_state: int
    last_dcc_contact_s: int | None  # None when the DCC never reached the hub
    attach_attempts: int

    SIZE: ClassVar[int] = 13
    _FMT: ClassVar[struct.Struct] = struct.Struct(">BBbIIH")

    def encode(self) -> bytes:
        return self._FMT.pack(
            int(self.state),
            int(self.reg_state),
            RSSI_UNKNOWN if self.rssi_dbm is None else self.rssi_dbm,
            self.seconds_in_state,
            NEVER if self.last_dcc_contact_s is None else self.last_dcc_contact_s,
            self.attach_attempts,
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, cls.SIZE, "WAN_STATUS record")
        state, reg, rssi, secs, last, attempts = cls._FMT.unpack_from(payload)
        return cls(
            state=as_enum(WanState, state),
            reg_state=as_enum(RegState, reg),
            rssi_dbm=None if rssi == RSSI_UNKNOWN else rssi,
            seconds_in_state=secs,
            last_dcc_contact_s=None if last == NEVER else last,
            attach_attempts=attempts,
        )


@dataclass(frozen=True, slots=True)
class HanStatus:
    state: HanState | int
    channel: int
    subghz_channel: int | None  # None when the hub has no 868 MHz channel
    pan_id: int
    extended_pan_id: Eui64
    open_join_windows: int

    SIZE: ClassVar[int] = 15

    def encode(self) -> bytes:
        return (
            bytes(
                [
                    int(self.state),
                    self.channel,
                    NO_SUBGHZ_CHANNEL if self.subghz_channel is None else self.subghz_channel,
                ]
            )
            + struct.pack(">H", self.pan_id)
            + self.extended_pan_id.raw
            + struct.pack(">H", self.open_join_windows)
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, cls.SIZE, "HAN_STATUS record")
        sub = payload[2]
        return cls(
            state=as_enum(HanState, payload[0]),
            channel=payload[1],
            subghz_channel=None if sub == NO_SUBGHZ_CHANNEL else sub,
            pan_id=struct.unpack_from(">H", payload, 3)[0],
            extended_pan_id=_eui(payload, 5),
            open_join_windows=struct.unpack_from(">H", payload, 13)[0],
        )


@dataclass(frozen=True, slots=True)
class DeviceLogEntry:
    eui64: Eui64
    device_type: DeviceType | int
    join_state: JoinState | int
    band: Band | int
    rssi_dbm: int | None
    lqi: int
    last_comms_s: int | None  # None when the hub never heard the device

    SIZE: ClassVar[int] = 17
    _TAIL: ClassVar[struct.Struct] = struct.Struct(">BBBbBI")

    def encode(self) -> bytes:
        return self.eui64.raw + self._TAIL.pack(
            int(self.device_type),
            int(self.join_state),
            int(self.band),
            RSSI_UNKNOWN if self.rssi_dbm is None else self.rssi_dbm,
            self.lqi,
            NEVER if self.last_comms_s is None else self.last_comms_s,
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, cls.SIZE, "DEVICE_LOG_ENTRY record")
        dtype, join, band, rssi, lqi, last = cls._TAIL.unpack_from(payload, 8)
        return cls(
            eui64=_eui(payload),
            device_type=as_enum(DeviceType, dtype),
            join_state=as_enum(JoinState, join),
            band=as_enum(Band, band),
            rssi_dbm=None if rssi == RSSI_UNKNOWN else rssi,
            lqi=lqi,
            last_comms_s=None if last == NEVER else last,
        )


@dataclass(frozen=True, slots=True)
class DeviceLog:
    """The DEVICE_LOG_READ response: COUNT then COUNT entries."""

    entries: tuple[DeviceLogEntry, ...]

    def encode(self) -> bytes:
        if len(self.entries) > 255:
            raise PayloadError("a device log read holds at most 255 entries")
        return bytes([len(self.entries)]) + b"".join(e.encode() for e in self.entries)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, 1, "DEVICE_LOG_READ response")
        count = payload[0]
        size = DeviceLogEntry.SIZE
        _need(payload, 1 + count * size, f"DEVICE_LOG_READ response with {count} entries")
        return cls(
            tuple(
                DeviceLogEntry.decode(payload[1 + i * size : 1 + (i + 1) * size])
                for i in range(count)
            )
        )

    def find(self, eui64: Eui64) -> DeviceLogEntry | None:
        for entry in self.entries:
            if entry.eui64 == eui64:
                return entry
        return None


# --- request payloads --------------------------------------------------------

INSTALL_CODE_LEN = 16
MAX_JOIN_TIMEOUT_S = 3600


@dataclass(frozen=True, slots=True)
class DeviceLogAdd:
    eui64: Eui64
    device_type: DeviceType | int
    install_code: bytes
    join_timeout_s: int

    SIZE: ClassVar[int] = 27

    def __post_init__(self) -> None:
        if len(self.install_code) != INSTALL_CODE_LEN:
            raise PayloadError(
                f"install code must be {INSTALL_CODE_LEN} bytes, got {len(self.install_code)}"
            )
        if not 0 <= self.join_timeout_s <= 0xFFFF:
            raise PayloadError(f"join timeout {self.join_timeout_s} s does not fit a u16")

    def encode(self) -> bytes:
        return (
            self.eui64.raw
            + bytes([int(self.device_type)])
            + self.install_code
            + struct.pack(">H", self.join_timeout_s)
        )

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, cls.SIZE, "DEVICE_LOG_ADD request")
        return cls(
            eui64=_eui(payload),
            device_type=as_enum(DeviceType, payload[8]),
            install_code=bytes(payload[9:25]),
            join_timeout_s=struct.unpack_from(">H", payload, 25)[0],
        )


@dataclass(frozen=True, slots=True)
class DeviceLogRemove:
    eui64: Eui64

    SIZE: ClassVar[int] = 8

    def encode(self) -> bytes:
        return self.eui64.raw

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, cls.SIZE, "DEVICE_LOG_REMOVE request")
        return cls(_eui(payload))


# --- events ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceLogChanged:
    """CHF_DEVICE_LOG_CHANGED: the device log changed; read it again to see how."""

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls()


@dataclass(frozen=True, slots=True)
class _DeviceEvent:
    """An event about one device, whose payload is that device's EUI-64."""

    eui64: Eui64

    def encode(self) -> bytes:
        return self.eui64.raw

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, 8, f"{cls.__name__} event")
        return cls(_eui(payload))


@dataclass(frozen=True, slots=True)
class DeviceJoinSucceeded(_DeviceEvent):
    """A device in the device log joined the HAN."""


@dataclass(frozen=True, slots=True)
class ConnectedToEsme(_DeviceEvent):
    """The hub is connected to the electricity meter (ESME)."""


@dataclass(frozen=True, slots=True)
class DisconnectedFromEsme(_DeviceEvent):
    """The hub lost its connection to the electricity meter (ESME)."""


@dataclass(frozen=True, slots=True)
class ThreeLostGsmeSearchesFailed(_DeviceEvent):
    """Three searches for a lost gas meter (GSME) failed: the device is lost."""


@dataclass(frozen=True, slots=True)
class DeviceJoinFailed:
    eui64: Eui64
    reason: JoinFailReason | int

    def encode(self) -> bytes:
        return self.eui64.raw + bytes([int(self.reason)])

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, 9, "DEVICE_JOIN_FAILED event")
        return cls(_eui(payload), as_enum(JoinFailReason, payload[8]))


@dataclass(frozen=True, slots=True)
class WanStateChanged:
    status: WanStatus

    def encode(self) -> bytes:
        return self.status.encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls(WanStatus.decode(payload))


@dataclass(frozen=True, slots=True)
class HanStateChanged:
    status: HanStatus

    def encode(self) -> bytes:
        return self.status.encode()

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        return cls(HanStatus.decode(payload))


@dataclass(frozen=True, slots=True)
class HubStarted:
    reason: StartReason | int

    def encode(self) -> bytes:
        return bytes([int(self.reason)])

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        _need(payload, 1, "HUB_STARTED event")
        return cls(as_enum(StartReason, payload[0]))


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An EVENT whose CMD this host does not know; ACKed and passed on raw."""

    cmd: int
    payload: bytes

    def encode(self) -> bytes:
        return self.payload


KnownEvent = (
    DeviceLogChanged
    | DeviceJoinSucceeded
    | DeviceJoinFailed
    | ConnectedToEsme
    | DisconnectedFromEsme
    | ThreeLostGsmeSearchesFailed
    | WanStateChanged
    | HanStateChanged
    | HubStarted
)
"""An event the spec lists. Spelled out for the type checker, so that a ``match`` over
events can be exhaustive; a unit test holds it equal to the records of ``EventCode``."""

HubEvent = KnownEvent | UnknownEvent


# --- the event table ---------------------------------------------------------


@enum.unique
class EventCode(enum.IntEnum):
    """Every event of spec section 6, once: its CMD and the record its payload is.

    The one table of events (as zigpy-znp and bellows declare each command once with
    its id and schema): ``decode_event`` finds the record by CMD here and
    ``event_code`` finds the CMD by the record's class here, so no record repeats
    its code. Members are plain ints on the wire, as before.
    """

    record: type[KnownEvent]

    def __new__(cls, code: int, record: type[KnownEvent]) -> EventCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.record = record
        return member

    CHF_DEVICE_LOG_CHANGED = 0x8F12, DeviceLogChanged
    DEVICE_JOIN_SUCCEEDED = 0x8F49, DeviceJoinSucceeded
    DEVICE_JOIN_FAILED = 0x8F48, DeviceJoinFailed
    CH_CONNECTED_TO_ESME = 0x81A2, ConnectedToEsme
    CH_DISCONNECTED_FROM_ESME = 0x81A3, DisconnectedFromEsme
    THREE_LOST_GSME_SEARCHES_FAILED = 0x8F29, ThreeLostGsmeSearchesFailed
    WAN_STATE_CHANGED = 0xC010, WanStateChanged
    HAN_STATE_CHANGED = 0xC020, HanStateChanged
    HUB_STARTED = 0xC0F0, HubStarted


# Both directions derived from the table above.
_BY_CODE: dict[int, EventCode] = {int(code): code for code in EventCode}
_BY_RECORD: dict[type[KnownEvent], EventCode] = {code.record: code for code in EventCode}


def decode_event(cmd: int, payload: bytes) -> HubEvent:
    """Decode an EVENT payload by its CMD; unknown CMDs give ``UnknownEvent``.

    Raises ``PayloadError`` when a known event's payload is shorter than its layout.
    """
    code = _BY_CODE.get(cmd)
    if code is None:
        return UnknownEvent(cmd, bytes(payload))
    return code.record.decode(payload)


def event_code(event: HubEvent) -> int:
    """The CMD an event travels under."""
    if isinstance(event, UnknownEvent):
        return event.cmd
    return int(_BY_RECORD[type(event)])
