"""LSP framing: bytes on the wire <-> ``Frame`` (spec section 2).

The encoder escapes and flags one frame. The decoder is a push parser over a
bounded buffer: it never holds more than one maximal escaped frame, resyncs at
the next flag at once, counts every kind of discarded frame, and never raises
from ``feed`` whatever the input, so it can sit inside ``data_received``.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from gatewayd_drivers.commshub.crc import GOOD_RESIDUE, crc16_x25

_log = logging.getLogger(__name__)

FLAG = 0x7E
ESCAPE = 0x7D
ESCAPE_XOR = 0x20
VERSION = 0x01
MAX_PAYLOAD = 512
HEADER_LEN = 7  # VER TYPE SEQ CMD(2) LEN(2)
FCS_LEN = 2
MAX_BODY = HEADER_LEN + MAX_PAYLOAD + FCS_LEN
# Worst case every body byte is escaped; a run longer than this between two
# flags cannot be a frame, so the decoder stops buffering it.
MAX_ESCAPED_BODY = 2 * MAX_BODY

_HEADER = struct.Struct(">BBBHH")
_FLAG_BYTES = bytes([FLAG])
_ESCAPE_BYTES = bytes([ESCAPE])


class FrameType(enum.IntEnum):
    REQUEST = 0x00
    RESPONSE = 0x01
    EVENT = 0x02
    ACK = 0x03


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``ftype`` is an int when the wire held an unknown TYPE."""

    ftype: FrameType | int
    seq: int
    cmd: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 0xFF:
            raise ValueError(f"SEQ {self.seq} out of range 0..255")
        if not 0 <= self.cmd <= 0xFFFF:
            raise ValueError(f"CMD {self.cmd:#x} out of range 0..0xFFFF")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")


def _escape(body: bytes) -> bytes:
    # Order matters: escape the escape byte first so the flag's escape is not re-escaped.
    return body.replace(_ESCAPE_BYTES, b"\x7d\x5d").replace(_FLAG_BYTES, b"\x7d\x5e")


def frame_body(frame: Frame) -> bytes:
    """The unescaped BODY (header, payload, FCS little-endian) of ``frame``."""
    head = _HEADER.pack(VERSION, int(frame.ftype), frame.seq, frame.cmd, len(frame.payload))
    data = head + frame.payload
    return data + crc16_x25(data).to_bytes(2, "little")


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of ``frame``: flag, escaped body, flag."""
    return _FLAG_BYTES + _escape(frame_body(frame)) + _FLAG_BYTES


# TYPE byte -> FrameType: a dict lookup per frame instead of the enum constructor and its
# ValueError for unlisted values, which the decode profile showed as a tenth of the cost.
_FRAME_TYPES: dict[int, FrameType | int] = {t.value: t for t in FrameType}


class DiscardReason(enum.Enum):
    ABORTED = "aborted"  # 0x7D directly before a flag
    SHORT = "short"  # fewer bytes than a header and FCS
    BAD_FCS = "bad_fcs"
    BAD_VERSION = "bad_version"
    BAD_LENGTH = "bad_length"  # LEN > 512 or LEN disagrees with the bytes received
    OVERSIZE = "oversize"  # more bytes between flags than any frame can have


@dataclass
class DecoderStats:
    frames: int = 0
    bytes_in: int = 0
    discarded: dict[DiscardReason, int] = field(
        default_factory=lambda: {reason: 0 for reason in DiscardReason}
    )

    @property
    def errors(self) -> int:
        return sum(self.discarded.values())


def parse_body(body: bytes) -> Frame | DiscardReason:
    """Check and parse one unescaped BODY."""
    if len(body) < HEADER_LEN + FCS_LEN:
        return DiscardReason.SHORT
    if crc16_x25(body) != GOOD_RESIDUE:
        return DiscardReason.BAD_FCS
    ver, ftype, seq, cmd, length = _HEADER.unpack_from(body)
    if ver != VERSION:
        return DiscardReason.BAD_VERSION
    if length > MAX_PAYLOAD or length != len(body) - HEADER_LEN - FCS_LEN:
        return DiscardReason.BAD_LENGTH
    return Frame(_FRAME_TYPES.get(ftype, ftype), seq, cmd, bytes(body[HEADER_LEN:-2]))


def unescape(raw: bytes) -> bytes | None:
    """Undo byte stuffing: a 0x7D takes the next byte, whatever it is, XOR 0x20.

    ``None`` when the run ends in an escape (a 0x7D directly before a flag aborts).
    """
    if ESCAPE not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while True:
        j = raw.find(ESCAPE, i)
        if j < 0:
            out += raw[i:]
            return bytes(out)
        if j + 1 >= n:
            return None
        out += raw[i:j]
        out.append(raw[j + 1] ^ ESCAPE_XOR)
        i = j + 2
        if i >= n:
            return bytes(out)


class FrameDecoder:
    """Push parser: ``feed(bytes)`` calls ``on_frame`` for every valid frame.

    Memory is bounded by ``MAX_ESCAPED_BODY`` whatever is fed: a run of bytes
    with no flag is dropped as soon as it is longer than any frame can be, and
    the decoder then hunts for the next flag.
    """

    def __init__(
        self,
        on_frame: Callable[[Frame], None],
        on_discard: Callable[[DiscardReason, int], None] | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._on_discard = on_discard
        self._pending = bytearray()
        self._hunting = False
        self.stats = DecoderStats()

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for a closing flag (never above MAX_ESCAPED_BODY)."""
        return len(self._pending)

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._pending.clear()
        self._hunting = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        self.stats.bytes_in += len(data)
        pos = 0
        n = len(data)
        while pos < n:
            idx = data.find(FLAG, pos)
            if idx < 0:
                self._buffer(data, pos, n)
                return
            if self._hunting:
                self._hunting = False
            elif self._pending:
                self._pending += data[pos:idx]
                run = bytes(self._pending)
                self._pending.clear()
                self._complete(run)
            elif idx > pos:
                self._complete(data[pos:idx])
            pos = idx + 1

    def _buffer(self, data: bytes, start: int, end: int) -> None:
        if self._hunting:
            return
        if len(self._pending) + (end - start) > MAX_ESCAPED_BODY:
            self._pending.clear()
            self._hunting = True
            self._discard(DiscardReason.OVERSIZE, 0)
            return
        self._pending += data[start:end]

    def _complete(self, run: bytes) -> None:
        if len(run) > MAX_ESCAPED_BODY:
            self._discard(DiscardReason.OVERSIZE, len(run))
            return
        body = unescape(run)
        if body is None:
            self._discard(DiscardReason.ABORTED, len(run))
            return
        result = parse_body(body)
        if isinstance(result, DiscardReason):
            self._discard(result, len(run))
            return
        self.stats.frames += 1
        try:
            self._on_frame(result)
        except Exception:
            # A consumer's bug must not kill the receive path of the port.
            _log.exception("frame handler failed for %s", result)

    def _discard(self, reason: DiscardReason, size: int) -> None:
        self.stats.discarded[reason] += 1
        if self._on_discard is not None:
            self._on_discard(reason, size)
