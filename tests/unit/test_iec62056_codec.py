"""IEC 62056-21 codec: identification, option select, BCC, data message and data block."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gatewayd_drivers.iec62056.errors import (
    BccError,
    IdentificationError,
    ReadoutError,
    UnsupportedModeError,
)
from gatewayd_drivers.iec62056.protocol import (
    ETX,
    STX,
    ack_option_select,
    bcc,
    parse_identification,
    sign_on,
)
from gatewayd_drivers.iec62056.readout import (
    MAX_DATA_MESSAGE,
    DataSet,
    Value,
    build_data_message,
    extract_data_message,
    parse_data_block,
    parse_obis,
)


def test_sign_on_and_option_select_bytes() -> None:
    assert sign_on() == b"/?!\r\n"
    assert sign_on("12345678") == b"/?12345678!\r\n"
    assert ack_option_select("5") == b"\x06050\r\n"
    assert ack_option_select("0") == b"\x06000\r\n"
    with pytest.raises(ValueError, match="baud rate character"):
        ack_option_select("9")
    with pytest.raises(ValueError, match="device address"):
        sign_on("bad/address")


def test_bcc_is_xor_of_the_bytes_after_stx_up_to_etx() -> None:
    # A worked example: "1.8.0(1)!\r\n" + ETX.
    body = b"1.8.0(1)\r\n!\r\n\x03"
    expected = 0
    for b in body:
        expected ^= b
    assert bcc(body) == expected
    msg = build_data_message(b"1.8.0(1)\r\n!\r\n")
    assert msg[0] == STX and msg[-2] == ETX and msg[-1] == expected


def test_identification_with_enhanced_id() -> None:
    ident = parse_identification(b"/ELS5\\2SP100-C\r\n")
    assert ident.manufacturer == "ELS"
    assert ident.baud_char == "5"
    assert ident.max_baudrate == 9600
    assert ident.enhanced == ("2",)
    assert ident.identification == "SP100-C"
    assert not ident.fast_reaction


def test_identification_lower_case_third_letter_means_fast_reaction() -> None:
    ident = parse_identification(b"/LGz6ZMD3104\r\n")
    assert ident.fast_reaction and ident.max_baudrate == 19200


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"/ELS5SP100", "CR LF"),
        (b"ELS5SP100\r\n", "start with '/'"),
        (b"/E1S5SP100\r\n", "manufacturer"),
        (b"/ELS5\r\n", "empty"),
        (b"/ELS5" + b"X" * 17 + b"\r\n", "longer than"),
        (b"/ELS5SP!00\r\n", "'/' or '!'"),
        (b"/ELS\x155SP\r\n", "non-printable"),
        (b"/ELS8SP100\r\n", "reserved"),
        (b"/ELS5\\\r\n", "enhanced"),
    ],
)
def test_bad_identification_is_named(line: bytes, match: str) -> None:
    with pytest.raises(IdentificationError, match=match) as info:
        parse_identification(line)
    assert info.value.step == "identification"


@pytest.mark.parametrize(("char", "mode"), [("E", "B"), ("Z", "A")])
def test_mode_a_and_b_meters_are_refused_by_name(char: str, mode: str) -> None:
    with pytest.raises(UnsupportedModeError, match=f"mode {mode}"):
        parse_identification(f"/ELS{char}SP100\r\n".encode())


def test_data_message_extracted_once_complete() -> None:
    msg = build_data_message(b"1.8.0(000123.4*kWh)\r\n!\r\n")
    for cut in range(len(msg)):
        assert extract_data_message(msg[:cut]) is None
    block, used = extract_data_message(b"\x00\x7f" + msg + b"rest") or (b"", 0)
    assert block == b"1.8.0(000123.4*kWh)\r\n!\r\n"
    assert used == 2 + len(msg)


def test_wrong_bcc_is_a_bcc_error() -> None:
    msg = bytearray(build_data_message(b"1.8.0(1)\r\n!\r\n"))
    msg[-1] ^= 0x01
    with pytest.raises(BccError, match="block check character"):
        extract_data_message(msg)


def test_noise_and_overlong_messages_are_bounded() -> None:
    with pytest.raises(ReadoutError, match="without a data message start"):
        extract_data_message(b"\x7f" * 300)
    with pytest.raises(ReadoutError, match="longer than"):
        extract_data_message(bytes([STX]) + b"1" * (MAX_DATA_MESSAGE + 1))


def test_data_block_with_units_several_values_and_full_obis() -> None:
    block = (
        b"0-0:C.1.0*255(12345678)\r\n"
        b"1-0:1.8.0*255(045678.90*kWh)1-0:2.8.0*255(000012.34*kWh)\r\n"
        b"1.6.0(012.50*kW)(2411281745)\r\n"
        b"F.F(00000000)\r\n"
        b"!\r\n"
    )
    sets = parse_data_block(block)
    assert sets == (
        DataSet("0-0:C.1.0*255", (Value("12345678", None),)),
        DataSet("1-0:1.8.0*255", (Value("045678.90", "kWh"),)),
        DataSet("1-0:2.8.0*255", (Value("000012.34", "kWh"),)),
        DataSet("1.6.0", (Value("012.50", "kW"), Value("2411281745", None))),
        DataSet("F.F", (Value("00000000", None),)),
    )
    assert sets[1].value == "045678.90" and sets[1].unit == "kWh"
    obis = sets[1].obis
    assert obis is not None
    assert (obis.a, obis.b, obis.cde, obis.f) == (1, 0, "1.8.0", "255")
    c10 = sets[0].obis
    assert c10 is not None and c10.cde == "96.1.0"


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (b"1.8.0(1)\r\n", "'!' CR LF"),
        (b"1.8.0 1\r\n!\r\n", "line 1: .*no '\\('"),
        (b"1.8.0(1)\r\n1.8.1(2\r\n!\r\n", "line 2: .*without '\\)'"),
        (b"1.8.0(1*)\r\n!\r\n", "bad unit"),
        (b"1.8.0(" + b"9" * 33 + b")\r\n!\r\n", "longer than 32"),
        (b"1.8.0(\xb5)\r\n!\r\n", "non-ASCII"),
    ],
)
def test_bad_data_block_names_the_line(block: bytes, match: str) -> None:
    with pytest.raises(ReadoutError, match=match):
        parse_data_block(block)


@pytest.mark.parametrize(
    ("address", "cde", "cd"),
    [
        ("1.8.0", "1.8.0", "1.8"),
        ("32.7", None, "32.7"),
        ("1-0:32.7.0*255", "32.7.0", "32.7"),
        ("1-1:1.8.1", "1.8.1", "1.8"),
        ("0.4.2", "0.4.2", "0.4"),
        ("C.1.0", "96.1.0", "96.1"),
    ],
)
def test_obis_forms(address: str, cde: str | None, cd: str) -> None:
    code = parse_obis(address)
    assert code is not None and code.cde == cde and code.cd == cd


@pytest.mark.parametrize("address", ["", "abc", "1.x.0", "1.2.3.4", "300.1.0", "1-0:"])
def test_non_obis_addresses(address: str) -> None:
    assert parse_obis(address) is None


# --- properties ---------------------------------------------------------------------------

_addr_chars = st.sampled_from("0123456789.:-*CFLP")
_value_chars = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="()*/!")
_values = st.builds(
    Value,
    st.text(_value_chars, max_size=32),
    st.one_of(st.none(), st.text(_value_chars, min_size=1, max_size=16)),
)
_data_sets = st.builds(
    DataSet,
    st.text(_addr_chars, min_size=1, max_size=16),
    st.lists(_values, min_size=1, max_size=3).map(tuple),
)


def _render(sets: list[list[DataSet]]) -> bytes:
    lines = []
    for line in sets:
        text = ""
        for ds in line:
            text += ds.address
            for v in ds.values:
                text += f"({v.value}*{v.unit})" if v.unit is not None else f"({v.value})"
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n!\r\n").encode()


@given(st.lists(st.lists(_data_sets, min_size=1, max_size=3), max_size=12))
def test_readout_round_trip(lines: list[list[DataSet]]) -> None:
    block = _render(lines)
    msg = build_data_message(block)
    got = extract_data_message(msg)
    assert got is not None and got == (block, len(msg))
    assert parse_data_block(got[0]) == tuple(ds for line in lines for ds in line)


@given(st.binary(max_size=600))
@example(b"noise" + build_data_message(b"1.8.0(00012.5*kWh)\r\n!\r\n") + b"tail")
def test_arbitrary_bytes_give_a_frame_none_or_a_readout_error(data: bytes) -> None:
    try:
        found = extract_data_message(data)
    except ReadoutError as exc:
        assert exc.step and str(exc)
        return
    if found is None:
        # Only a message still arriving asks for more: no STX yet, or no BCC after its ETX.
        start = data.find(STX)
        assert start < 0 or ETX not in data[start + 1 : -1]
        return
    block, used = found
    # The frame found is really in the bytes: STX, the block, ETX and a matching BCC.
    end = used - 2
    start = end - len(block) - 1
    assert start >= 0 and data[start] == STX and data[end] == ETX
    assert data[start + 1 : end] == block and data[used - 1] == bcc(block + bytes([ETX]))
    try:
        sets = parse_data_block(block)
    except ReadoutError as exc:
        assert exc.step and str(exc)
        return
    assert all(isinstance(ds, DataSet) for ds in sets)


@given(st.binary(max_size=80))
def test_arbitrary_identification_gives_a_parse_or_a_named_error(data: bytes) -> None:
    try:
        parse_identification(data)
    except (IdentificationError, UnsupportedModeError) as exc:
        assert exc.step == "identification"


@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0, max_value=255))
def test_any_corrupted_bcc_is_caught(block: bytes, flip: int) -> None:
    block = block.replace(bytes([ETX]), b"").replace(bytes([STX]), b"") + b"!\r\n"
    msg = bytearray(build_data_message(block))
    if flip == 0:
        return
    msg[-1] ^= flip
    with pytest.raises(BccError):
        extract_data_message(msg)
