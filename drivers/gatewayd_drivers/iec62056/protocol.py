"""IEC 62056-21 mode C messages: sign-on, identification, acknowledgement, block check.

The codec layer (bytes -> messages) of the optical reader: pure functions, no I/O. Names and
limits follow IEC 62056-21 section 6 (direct local data exchange):

- request (sign-on): ``/ ? [device address] ! CR LF``, sent at 300 baud, 7E1;
- identification: ``/ X X X Z [\\W]... Ident CR LF``: three manufacturer letters (a lower
  case third letter means the meter answers within 20 ms), the baud rate character Z, optional
  enhanced identification pairs ``\\W``, and up to 16 printable identification characters;
- acknowledgement / option select: ``ACK V Z Y CR LF`` (V protocol control, 0 = normal;
  Z the baud rate character chosen; Y mode control, 0 = data readout);
- the block check character (BCC) is the XOR of every byte after STX up to and including ETX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gatewayd_drivers.iec62056.errors import IdentificationError, UnsupportedModeError

__all__ = [
    "ACK",
    "CRLF",
    "ETX",
    "MAX_IDENTIFICATION_LEN",
    "MODE_C_BAUD",
    "NUL",
    "STX",
    "Identification",
    "ack_option_select",
    "bcc",
    "parse_identification",
    "sign_on",
]

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
ACK: Final = 0x06
NUL: Final = 0x00
CRLF: Final = b"\r\n"

# Mode C baud rate characters (IEC 62056-21 6.3.14); 7 to 9 are reserved.
MODE_C_BAUD: Final[dict[str, int]] = {
    "0": 300,
    "1": 600,
    "2": 1200,
    "3": 2400,
    "4": 4800,
    "5": 9600,
    "6": 19200,
}
# Mode B uses letters (A = 600 ... I = reserved); a mode A meter sends anything else.
_MODE_B_CHARS: Final = frozenset("ABCDEFGHI")

# '/', 3 manufacturer letters, Z, up to a few '\W' pairs, 16 identification characters, CR LF.
MAX_IDENTIFICATION_LEN: Final = 1 + 3 + 1 + 2 * 4 + 16 + 2
MAX_IDENT_CHARS: Final = 16
_DEVICE_ADDRESS = re.compile(r"^[0-9A-Za-z ]{0,32}$")


def sign_on(device_address: str = "") -> bytes:
    """The request message; an empty address asks whichever meter is at the probe."""
    if not _DEVICE_ADDRESS.match(device_address):
        raise ValueError(
            f"device address {device_address!r} must be up to 32 characters from 0-9, A-Z, "
            "a-z and space"
        )
    return b"/?" + device_address.encode("ascii") + b"!" + CRLF


def ack_option_select(baud_char: str, *, mode_control: str = "0") -> bytes:
    """``ACK 0 Z Y CR LF``: normal protocol, baud character Z, data readout (Y = 0)."""
    if baud_char not in MODE_C_BAUD:
        raise ValueError(f"{baud_char!r} is not a mode C baud rate character (0 to 6)")
    return bytes([ACK]) + b"0" + baud_char.encode("ascii") + mode_control.encode("ascii") + CRLF


def bcc(block: bytes) -> int:
    """XOR of ``block``: pass the bytes after STX up to and including ETX."""
    value = 0
    for byte in block:
        value ^= byte
    return value


@dataclass(frozen=True, slots=True)
class Identification:
    """A parsed identification message."""

    manufacturer: str
    baud_char: str
    enhanced: tuple[str, ...]  # the W of each '\W' pair, e.g. ('2',) for mode E capable
    identification: str

    @property
    def max_baudrate(self) -> int:
        return MODE_C_BAUD[self.baud_char]

    @property
    def fast_reaction(self) -> bool:
        """A lower case third letter: the meter may answer after 20 ms instead of 200 ms."""
        return self.manufacturer[2].islower()


def parse_identification(line: bytes) -> Identification:
    """Parse ``/XXXZ[\\W]Ident CR LF``. Raises ``IdentificationError`` or
    ``UnsupportedModeError`` (a mode A or B meter)."""
    step = "identification"
    if len(line) > MAX_IDENTIFICATION_LEN:
        raise IdentificationError(
            step, f"identification longer than {MAX_IDENTIFICATION_LEN} bytes"
        )
    if not line.endswith(CRLF):
        raise IdentificationError(step, f"identification does not end with CR LF: {line!r}")
    body = line[:-2]
    if any(b < 0x20 or b > 0x7E for b in body):
        raise IdentificationError(step, f"identification holds non-printable bytes: {line!r}")
    text = body.decode("ascii")
    if len(text) < 5 or text[0] != "/":
        raise IdentificationError(
            step, f"identification must start with '/', 3 letters and a baud character: {line!r}"
        )
    manufacturer, baud_char = text[1:4], text[4]
    if not manufacturer.isalpha() or not manufacturer[:2].isupper():
        raise IdentificationError(
            step, f"manufacturer {manufacturer!r} is not three letters (two upper case first)"
        )
    if baud_char not in MODE_C_BAUD:
        mode = "B" if baud_char in _MODE_B_CHARS else "A"
        if baud_char in "789":
            raise IdentificationError(step, f"baud rate character {baud_char!r} is reserved")
        raise UnsupportedModeError(
            step,
            f"the meter announces protocol mode {mode} (baud character {baud_char!r}); "
            "this reader speaks mode C",
        )
    rest = text[5:]
    enhanced: list[str] = []
    while rest.startswith("\\"):
        if len(rest) < 2:
            raise IdentificationError(step, f"'\\' without an enhanced identification: {line!r}")
        enhanced.append(rest[1])
        rest = rest[2:]
    if not rest:
        raise IdentificationError(step, f"identification is empty: {line!r}")
    if len(rest) > MAX_IDENT_CHARS:
        raise IdentificationError(
            step, f"identification {rest!r} is longer than {MAX_IDENT_CHARS} characters"
        )
    if "/" in rest or "!" in rest:
        raise IdentificationError(step, f"identification {rest!r} holds '/' or '!'")
    return Identification(manufacturer, baud_char, tuple(enhanced), rest)


def baud_char_for(baudrate: int) -> str:
    """The mode C character of a baud rate (``ValueError`` for one mode C does not have)."""
    for char, rate in MODE_C_BAUD.items():
        if rate == baudrate:
            return char
    raise ValueError(f"{baudrate} baud is not a mode C rate ({sorted(MODE_C_BAUD.values())})")
