"""ZNP MT framing: bytes on the wire <-> ``MtFrame`` (TI Z-Stack Monitor and Test, UART).

The first step of the radio's flow (serial bytes -> frames). A frame is
``SOF(0xFE) LEN CMD0 CMD1 DATA[LEN] FCS``: LEN counts DATA only (at most 250),
CMD0 holds the command type in its top three bits and the subsystem in the low
five, and FCS is the XOR of every byte from LEN to the end of DATA.

The decoder is a push parser with the same standards as the LSP's: a bounded
buffer (never more than one maximal frame waiting), immediate resync at the
next SOF after anything invalid, and no exception out of ``feed``. Because MT
has no closing flag, a corrupted LEN byte could make a naive parser wait for
up to 250 bytes that belong to the frames behind it; this one never stalls on
that: while a long frame is incomplete it checks whether a later SOF in the
buffer already starts a complete frame with a good FCS, and if so it drops the
false start and delivers that frame at once. A false start is also dropped at
once when its CMD0 holds a reserved command type (4..7), which no stick sends.
What remains is a false start whose type and FCS both happen to check out (about
1 in 512) and whose whole length is already buffered: it is taken as a frame
(and dropped as unknown by the client) with the frames it covers.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

_log = logging.getLogger(__name__)

SOF = 0xFE
MAX_DATA = 250
OVERHEAD = 5  # SOF LEN CMD0 CMD1 ... FCS
MAX_FRAME = MAX_DATA + OVERHEAD
MAX_TYPE = 3  # SRSP; command types 4..7 are reserved


class CommandType(enum.IntEnum):
    """CMD0 bits 7..5."""

    POLL = 0
    SREQ = 1
    AREQ = 2
    SRSP = 3


class Subsystem(enum.IntEnum):
    """CMD0 bits 4..0 (the ones this driver speaks)."""

    RPC_ERROR = 0x00
    SYS = 0x01
    AF = 0x04
    ZDO = 0x05


@dataclass(frozen=True, slots=True)
class MtFrame:
    """One MT frame. ``ftype``/``subsystem`` are ints when the wire held unlisted values."""

    ftype: CommandType | int
    subsystem: Subsystem | int
    cmd_id: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= int(self.ftype) <= MAX_TYPE:
            raise ValueError(f"command type {self.ftype} out of range 0..3 (4..7 are reserved)")
        if not 0 <= int(self.subsystem) <= 0x1F:
            raise ValueError(f"subsystem {self.subsystem} out of range 0..31")
        if not 0 <= self.cmd_id <= 0xFF:
            raise ValueError(f"command id {self.cmd_id} out of range 0..255")
        if len(self.data) > MAX_DATA:
            raise ValueError(f"MT data of {len(self.data)} bytes exceeds {MAX_DATA}")

    @property
    def cmd0(self) -> int:
        return (int(self.ftype) << 5) | int(self.subsystem)

    @property
    def key(self) -> tuple[int, int, int]:
        """(type, subsystem, id): what a listener matches on."""
        return int(self.ftype), int(self.subsystem), self.cmd_id


# Bound once: fcs runs per frame, and this saves it an attribute lookup each time.
_from_bytes = int.from_bytes


def fcs(data: bytes | bytearray | memoryview) -> int:
    """XOR of every byte (MT computes it over LEN, CMD0, CMD1 and DATA)."""
    # The decoder checks every frame, and a per-byte Python loop costs 15-45 ns a byte. Read
    # the whole buffer as one integer instead and fold it onto itself: each step XORs the top
    # half of the bytes onto the bottom half in C, so a 253-byte body takes 8 steps and the
    # low byte ends as the XOR of all of them. The widths are powers of two so that each half
    # lies wholly within the bytes the step before left valid (what sits above is never read).
    value = _from_bytes(data)
    shift = 4 << (len(data) - 1).bit_length()  # bits in half the next power-of-two width
    while shift >= 8:
        value ^= value >> shift
        shift >>= 1
    return value & 0xFF


def encode_frame(frame: MtFrame) -> bytes:
    """Wire bytes of ``frame``."""
    body = bytes((len(frame.data), frame.cmd0, frame.cmd_id)) + frame.data
    return bytes((SOF,)) + body + bytes((fcs(body),))


def _split_cmd0(cmd0: int) -> tuple[CommandType | int, Subsystem | int]:
    ftype, sub = cmd0 >> 5, cmd0 & 0x1F
    try:
        kind: CommandType | int = CommandType(ftype)
    except ValueError:
        kind = ftype
    try:
        subsystem: Subsystem | int = Subsystem(sub)
    except ValueError:
        subsystem = sub
    return kind, subsystem


# Every CMD0 split once at import: the decoder indexes this per frame instead of calling two
# enum constructors (and catching their ValueError for unlisted values) on the hot path.
_CMD0_SPLIT = tuple(_split_cmd0(cmd0) for cmd0 in range(256))


def _fcs_ok(buf: bytearray, start: int, end: int) -> bool:
    """Whether the frame in ``buf[start:end]`` (SOF to FCS) has a good FCS.

    The FCS is the XOR of LEN..DATA, so LEN..FCS XOR to zero exactly when it matches: one
    fold over the slice, no separate index of the FCS byte. A bytearray slice rather than a
    memoryview: a view left alive would make the decoder's ``del buf[:n]`` raise.
    """
    return fcs(buf[start + 1 : end]) == 0


class DiscardReason(enum.Enum):
    JUNK = "junk"  # bytes before a SOF
    BAD_LENGTH = "bad_length"  # LEN above 250
    BAD_FCS = "bad_fcs"
    BAD_TYPE = "bad_type"  # CMD0 holds a reserved command type (4..7)
    FALSE_START = "false_start"  # a SOF whose LEN ran over a complete frame behind it


@dataclass
class DecoderStats:
    frames: int = 0
    bytes_in: int = 0
    discarded: dict[DiscardReason, int] = field(
        default_factory=lambda: {reason: 0 for reason in DiscardReason}
    )

    @property
    def errors(self) -> int:
        return sum(n for r, n in self.discarded.items() if r is not DiscardReason.JUNK)


def _complete_frame_at(buf: bytearray, pos: int) -> int:
    """Length of a complete, FCS-valid frame starting at ``pos``; 0 when there is none."""
    if pos + 2 > len(buf):
        return 0
    length = buf[pos + 1]
    if length > MAX_DATA:
        return 0
    end = pos + length + OVERHEAD
    if end > len(buf) or buf[pos + 2] >> 5 > MAX_TYPE:
        return 0
    return end - pos if _fcs_ok(buf, pos, end) else 0


class FrameDecoder:
    """Push parser: ``feed(bytes)`` calls ``on_frame`` for every valid frame.

    Never holds more than ``MAX_FRAME`` bytes between calls, whatever is fed.
    """

    def __init__(
        self,
        on_frame: Callable[[MtFrame], None],
        on_discard: Callable[[DiscardReason, int], None] | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._on_discard = on_discard
        self._buf = bytearray()
        self.stats = DecoderStats()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._buf.clear()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self.stats.bytes_in += len(data)
        self._buf += data
        try:
            self._drain()
        except Exception:  # pragma: no cover - a bug here must not kill the port
            _log.exception("MT decoder failed; dropping its buffer")
            self._buf.clear()

    def _drain(self) -> None:
        buf = self._buf
        while buf:
            start = buf.find(SOF)
            if start < 0:
                self._discard(DiscardReason.JUNK, len(buf))
                buf.clear()
                return
            if start:
                self._discard(DiscardReason.JUNK, start)
                del buf[:start]
            if len(buf) < 2:
                return
            length = buf[1]
            if length > MAX_DATA:
                self._discard(DiscardReason.BAD_LENGTH, 1)
                del buf[:1]
                continue
            end = length + OVERHEAD
            if len(buf) < end:
                later = self._later_frame()
                if later < 0:
                    return
                self._discard(DiscardReason.FALSE_START, later)
                del buf[:later]
                continue
            if buf[2] >> 5 > MAX_TYPE:
                # Types 4..7 are reserved: no stick sends them, so this SOF was noise.
                self._discard(DiscardReason.BAD_TYPE, 1)
                del buf[:1]
                continue
            if not _fcs_ok(buf, 0, end):
                # Resync on the next SOF inside this run: it may be a real frame.
                self._discard(DiscardReason.BAD_FCS, 1)
                del buf[:1]
                continue
            ftype, subsystem = _CMD0_SPLIT[buf[2]]
            frame = MtFrame(ftype, subsystem, buf[3], bytes(buf[4 : end - 1]))
            del buf[:end]
            self._deliver(frame)

    def _later_frame(self) -> int:
        """The first SOF after the start that begins a whole, valid frame; -1 if none."""
        buf = self._buf
        pos = buf.find(SOF, 1)
        while pos >= 0:
            if _complete_frame_at(buf, pos):
                return pos
            pos = buf.find(SOF, pos + 1)
        return -1

    def _deliver(self, frame: MtFrame) -> None:
        self.stats.frames += 1
        try:
            self._on_frame(frame)
        except Exception:
            # A consumer's bug must not kill the receive path of the port.
            _log.exception("MT frame handler failed for %s", frame)

    def _discard(self, reason: DiscardReason, size: int) -> None:
        self.stats.discarded[reason] += 1
        if self._on_discard is not None:
            self._on_discard(reason, size)
