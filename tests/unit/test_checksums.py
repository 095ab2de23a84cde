"""The frame checks (LSP CRC-16/X.25, ZNP MT FCS) against plain reference implementations.

Both checks are computed without a per-byte Python loop, by tricks whose correctness is not
obvious at sight (a bit-reversed run of the stdlib's unreflected CRC; an integer folded on
itself). The references here are the definitions written out the slow, obvious way; the
properties say the fast code agrees with them on any bytes, in any buffer type a decoder
passes, and the check values pin both to the published numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd_drivers.commshub.crc import GOOD_RESIDUE, crc16_x25
from gatewayd_drivers.znp.frames import fcs


def reference_crc16_x25(data: bytes) -> int:
    """CRC-16/X.25 bit by bit: reflected polynomial 0x8408, init 0xFFFF, xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def reference_fcs(data: bytes) -> int:
    """MT FCS: the XOR of every byte."""
    result = 0
    for byte in data:
        result ^= byte
    return result


def buffers(data: bytes) -> list[bytes | bytearray | memoryview]:
    """``data`` as each buffer type the codecs are handed, a view into a larger buffer too."""
    padded = bytearray(b"\xa5" + data + b"\x5a")
    return [data, bytearray(data), memoryview(data), memoryview(padded)[1:-1]]


# --- check values ---------------------------------------------------------------------------


def test_crc_check_values() -> None:
    assert crc16_x25(b"123456789") == 0x906E  # the catalogue's check value, quoted in the spec
    assert crc16_x25(b"") == 0x0000  # init 0xFFFF, nothing shifted in, xorout 0xFFFF
    # Spec section 2, PING request SEQ 0x10: the body before its FCS, then FCS 39 fd (LSB first).
    assert crc16_x25(bytes.fromhex("01001000010000")) == 0xFD39


def test_fcs_check_values() -> None:
    assert fcs(b"") == 0
    assert fcs(b"\x7f") == 0x7F
    assert fcs(b"123456789") == 0x31
    # SYS_PING request: LEN 0, CMD0 0x21, CMD1 0x01 -> FCS 0x20.
    assert fcs(bytes.fromhex("002101")) == 0x20


# --- agreement with the references ----------------------------------------------------------


@given(st.binary(max_size=1100))
def test_crc_matches_the_reference_on_any_bytes(data: bytes) -> None:
    expected = reference_crc16_x25(data)
    for buf in buffers(data):
        assert crc16_x25(buf) == expected


@given(st.binary(max_size=1100))
def test_fcs_matches_the_reference_on_any_bytes(data: bytes) -> None:
    expected = reference_fcs(data)
    for buf in buffers(data):
        assert fcs(buf) == expected


@pytest.mark.parametrize(
    ("fast", "reference"),
    [(crc16_x25, reference_crc16_x25), (fcs, reference_fcs)],
    ids=["crc16_x25", "fcs"],
)
def test_every_length_up_to_past_the_largest_frame(
    fast: Callable[[bytes], int], reference: Callable[[bytes], int]
) -> None:
    # The FCS folds by powers of two, so every length around each power is worth a case;
    # hypothesis draws few of the exact boundary lengths.
    rng = random.Random(1021)
    for length in range(1100):
        data = rng.randbytes(length)
        assert fast(data) == reference(data), length


@given(st.binary(max_size=600), st.integers(0, 0xFFFF))
def test_a_body_with_its_fcs_checks_to_the_residue_and_no_other_fcs_does(
    data: bytes, fcs_value: int
) -> None:
    # The LSP decoder checks BODY with its FCS in one go against GOOD_RESIDUE: that must
    # accept exactly the FCS the reference gives, sent least significant byte first.
    good = reference_crc16_x25(data)
    assert crc16_x25(data + good.to_bytes(2, "little")) == GOOD_RESIDUE
    checked = crc16_x25(data + fcs_value.to_bytes(2, "little"))
    assert (checked == GOOD_RESIDUE) == (fcs_value == good)


@given(st.binary(min_size=1, max_size=600), st.data())
def test_a_flipped_bit_changes_both_checks(data: bytes, draw: st.DataObject) -> None:
    # What the checks are for: a single flipped bit never passes either of them.
    bit = draw.draw(st.integers(0, 8 * len(data) - 1))
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert crc16_x25(flipped) != crc16_x25(data)
    assert fcs(flipped) != fcs(data)
