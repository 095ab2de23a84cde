"""CRC-16/X.25, the frame check sequence of the Comms Hub LSP (spec section 2).

Reflected polynomial 0x1021 (0x8408 reflected), init 0xFFFF, xorout 0xFFFF.
Table-driven: the decoder checks every frame, so this sits on the hot path.
"""

from __future__ import annotations


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_x25(data: bytes | bytearray | memoryview) -> int:
    """Return the CRC-16/X.25 of ``data`` (check value of b"123456789" is 0x906E)."""
    crc = 0xFFFF
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFF
