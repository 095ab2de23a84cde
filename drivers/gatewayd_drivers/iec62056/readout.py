"""IEC 62056-21 data message: ``STX data-block ! CR LF ETX BCC`` -> OBIS-coded values.

The codec of a data readout, pure and bounded. ``extract_data_message`` finds a complete
message in received bytes and checks its BCC; ``parse_data_block`` turns the block into
``DataSet``s. A data line holds one or more data sets ``address(value*unit)``; a data set
may carry several values, e.g. a maximum demand and its time ``1.6.0(5.2*kW)(2401151230)``.
Addresses are OBIS codes in the full form ``A-B:C.D.E*F`` or the short ``C.D.E`` / ``C.D``
forms meters print; IEC 62056-21 letters C, F, L, P stand for 96, 97, 98, 99.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gatewayd_drivers.iec62056.errors import BccError, ReadoutError
from gatewayd_drivers.iec62056.protocol import CRLF, ETX, STX, bcc

__all__ = [
    "MAX_DATA_MESSAGE",
    "DataSet",
    "ObisCode",
    "Value",
    "build_data_message",
    "extract_data_message",
    "parse_data_block",
    "parse_obis",
]

# A register readout is a few hundred bytes; a load profile could be more. Bound it.
MAX_DATA_MESSAGE: Final = 64 * 1024
# Bytes before STX that are skipped (line noise) before giving up on a readout.
MAX_LEADING_NOISE: Final = 256
MAX_ADDRESS: Final = 16
MAX_VALUE: Final = 32
MAX_UNIT: Final = 16
_LETTER_GROUPS: Final = {"C": "96", "F": "97", "L": "98", "P": "99"}
_STEP = "readout"
_PARSE = "data block"


@dataclass(frozen=True, slots=True)
class Value:
    value: str
    unit: str | None


@dataclass(frozen=True, slots=True)
class ObisCode:
    """An OBIS code as the address gave it; absent groups are ``None``."""

    a: int | None
    b: int | None
    c: str
    d: str
    e: str | None
    f: str | None

    @property
    def cd(self) -> str:
        return f"{self.c}.{self.d}"

    @property
    def cde(self) -> str | None:
        return None if self.e is None else f"{self.c}.{self.d}.{self.e}"


@dataclass(frozen=True, slots=True)
class DataSet:
    """One ``address(value*unit)...`` data set of a readout."""

    address: str
    values: tuple[Value, ...]

    @property
    def value(self) -> str:
        return self.values[0].value

    @property
    def unit(self) -> str | None:
        return self.values[0].unit

    @property
    def obis(self) -> ObisCode | None:
        return parse_obis(self.address)


def _group(text: str) -> str | None:
    if text.isdigit() and len(text) <= 3 and int(text) <= 255:
        return str(int(text))
    if text in _LETTER_GROUPS:
        return _LETTER_GROUPS[text]
    return None


def parse_obis(address: str) -> ObisCode | None:
    """The OBIS code of an address, or ``None`` when the address is not one."""
    a = b = None
    rest = address
    if ":" in rest:
        medium, rest = rest.split(":", 1)
        if "-" in medium:
            sa, sb = medium.split("-", 1)
            ga, gb = _group(sa), _group(sb)
            if ga is None or gb is None:
                return None
            a, b = int(ga), int(gb)
        else:
            gb = _group(medium)
            if gb is None:
                return None
            b = int(gb)
    f = None
    if "*" in rest:
        rest, sf = rest.split("*", 1)
        f = _group(sf)
        if f is None:
            return None
    parts = rest.split(".")
    if len(parts) not in (2, 3):
        return None
    groups = [_group(p) for p in parts]
    if any(g is None for g in groups):
        return None
    c, d = groups[0], groups[1]
    assert c is not None and d is not None
    e = groups[2] if len(groups) == 3 else None
    return ObisCode(a, b, c, d, e, f)


def build_data_message(block: bytes) -> bytes:
    """``STX block ETX BCC`` (``block`` ends with ``! CR LF``): for simulators and tests."""
    body = block + bytes([ETX])
    return bytes([STX]) + body + bytes([bcc(body)])


def extract_data_message(buffer: bytes | bytearray) -> tuple[bytes, int] | None:
    """Find one complete data message in ``buffer``.

    Returns ``(data block, bytes consumed)`` once STX ... ETX BCC has arrived and the BCC
    matches; ``None`` while more bytes are needed. Raises ``BccError`` on a wrong BCC and
    ``ReadoutError`` on noise or a message beyond the bounds.
    """
    start = buffer.find(bytes([STX]))
    if start < 0:
        if len(buffer) > MAX_LEADING_NOISE:
            raise ReadoutError(
                _STEP, f"{len(buffer)} bytes arrived without a data message start (STX)"
            )
        return None
    if start > MAX_LEADING_NOISE:
        raise ReadoutError(_STEP, f"{start} bytes of noise before the data message start (STX)")
    end = buffer.find(bytes([ETX]), start + 1)
    if end < 0:
        if len(buffer) - start > MAX_DATA_MESSAGE:
            raise ReadoutError(_STEP, f"data message longer than {MAX_DATA_MESSAGE} bytes")
        return None
    if end + 1 >= len(buffer):
        return None  # the BCC is still to come
    body = bytes(buffer[start + 1 : end + 1])
    got = buffer[end + 1]
    want = bcc(body)
    if got != want:
        raise BccError(
            _STEP, f"block check character is 0x{got:02X}, the message gives 0x{want:02X}"
        )
    return body[:-1], end + 2


def parse_data_block(block: bytes) -> tuple[DataSet, ...]:
    """The data sets of a data block (which must end with ``! CR LF``)."""
    if not block.endswith(b"!" + CRLF):
        raise ReadoutError(_PARSE, "data block does not end with '!' CR LF")
    try:
        text = block[:-3].decode("ascii")
    except UnicodeDecodeError as exc:
        raise ReadoutError(_PARSE, f"data block holds a non-ASCII byte at {exc.start}") from None
    sets: list[DataSet] = []
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        sets.extend(_parse_line(line, number))
    return tuple(sets)


def _parse_line(line: str, number: int) -> list[DataSet]:
    sets: list[DataSet] = []
    pos = 0
    while pos < len(line):
        open_at = line.find("(", pos)
        if open_at < 0:
            raise ReadoutError(_PARSE, f"line {number}: {_show(line)}: no '(' after the address")
        address = line[pos:open_at]
        if len(address) > MAX_ADDRESS or any(c in address for c in "()/!"):
            raise ReadoutError(_PARSE, f"line {number}: bad address {_show(address)}")
        values: list[Value] = []
        pos = open_at
        while pos < len(line) and line[pos] == "(":
            close_at = line.find(")", pos + 1)
            if close_at < 0:
                raise ReadoutError(_PARSE, f"line {number}: {_show(line)}: '(' without ')'")
            values.append(_parse_value(line[pos + 1 : close_at], number))
            pos = close_at + 1
        sets.append(DataSet(address, tuple(values)))
    return sets


def _parse_value(text: str, number: int) -> Value:
    if "(" in text or "/" in text or "!" in text:
        raise ReadoutError(_PARSE, f"line {number}: bad value {_show(text)}")
    value, star, unit = text.partition("*")
    if len(value) > MAX_VALUE:
        raise ReadoutError(
            _PARSE, f"line {number}: value {_show(value)} longer than {MAX_VALUE} characters"
        )
    if star and (not unit or len(unit) > MAX_UNIT or "*" in unit):
        raise ReadoutError(_PARSE, f"line {number}: bad unit {_show(unit)}")
    return Value(value, unit if star else None)


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
