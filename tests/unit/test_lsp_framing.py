"""LSP framing: the spec's example frames, and property tests of the decoder."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd_drivers.commshub.crc import crc16_x25
from gatewayd_drivers.commshub.framing import (
    MAX_ESCAPED_BODY,
    MAX_PAYLOAD,
    DiscardReason,
    Frame,
    FrameDecoder,
    FrameType,
    encode_frame,
    frame_body,
)

# Spec section 2, "Examples (hex, as on the wire)".
SPEC_VECTORS = [
    ("ping request seq 0x10", Frame(FrameType.REQUEST, 0x10, 0x0001), "7e01001000010000 39fd7e"),
    (
        "ping response seq 0x10 ok",
        Frame(FrameType.RESPONSE, 0x10, 0x0001, b"\x00"),
        "7e 01 01 10 00 01 00 01 00 ca da 7e",
    ),
    (
        "ping request seq 0x11 (escaped FCS)",
        Frame(FrameType.REQUEST, 0x11, 0x0001),
        "7e 01 00 11 00 01 00 00 7d 5d f6 7e",
    ),
    (
        "join succeeded seq 0x7e (escaped SEQ)",
        Frame(FrameType.EVENT, 0x7E, 0x8F49, bytes.fromhex("00db1234567890a0")),
        "7e 01 02 7d 5e 8f 49 00 08 00 db 12 34 56 78 90 a0 22 1d 7e",
    ),
    (
        "hub started power on",
        Frame(FrameType.EVENT, 0x00, 0xC0F0, b"\x00"),
        "7e 01 02 00 c0 f0 00 01 00 f3 10 7e",
    ),
]

VECTOR_PARAMS = [v[1:] for v in SPEC_VECTORS]
VECTOR_IDS = [v[0] for v in SPEC_VECTORS]


def decode_all(data: bytes, chunk: int | None = None) -> tuple[list[Frame], FrameDecoder]:
    frames: list[Frame] = []
    decoder = FrameDecoder(frames.append)
    if chunk is None:
        decoder.feed(data)
    else:
        for i in range(0, len(data), chunk):
            decoder.feed(data[i : i + chunk])
    return frames, decoder


def test_crc_check_value() -> None:
    assert crc16_x25(b"123456789") == 0x906E


@pytest.mark.parametrize(("frame", "wire"), VECTOR_PARAMS, ids=VECTOR_IDS)
def test_spec_vectors_encode(frame: Frame, wire: str) -> None:
    assert encode_frame(frame) == bytes.fromhex(wire)


@pytest.mark.parametrize(("frame", "wire"), VECTOR_PARAMS, ids=VECTOR_IDS)
def test_spec_vectors_decode(frame: Frame, wire: str) -> None:
    for chunk in (None, 1, 3):
        frames, _ = decode_all(bytes.fromhex(wire), chunk)
        assert frames == [frame]


def test_shared_flag_and_empty_frames() -> None:
    a = encode_frame(Frame(FrameType.EVENT, 1, 0x8F12))
    b = encode_frame(Frame(FrameType.EVENT, 2, 0x8F12))
    # Frames sharing one flag, and empty frames (flags in a row), are fine.
    frames, decoder = decode_all(b"\x7e\x7e\x7e" + a[:-1] + b + b"\x7e\x7e")
    assert [f.seq for f in frames] == [1, 2]
    assert decoder.stats.errors == 0


def test_bad_fcs_version_length_and_abort_are_counted() -> None:
    good = frame_body(Frame(FrameType.RESPONSE, 5, 0x0001, b"\x00"))
    bad_fcs = good[:-1] + bytes([good[-1] ^ 0x01])
    body = bytearray(good[:-2])
    body[0] = 0x02
    bad_ver = bytes(body) + crc16_x25(body).to_bytes(2, "little")
    body = bytearray(good[:-2])
    body[6] = 2  # LEN says 2, one payload byte present
    bad_len = bytes(body) + crc16_x25(body).to_bytes(2, "little")
    aborted = good[:4] + b"\x7d"
    stream = b"".join(b"\x7e" + x for x in (bad_fcs, bad_ver, bad_len, aborted)) + b"\x7e"
    frames, decoder = decode_all(stream + encode_frame(Frame(FrameType.EVENT, 9, 0x8F12)))
    assert [f.seq for f in frames] == [9]
    d = decoder.stats.discarded
    assert d[DiscardReason.BAD_FCS] == 1
    assert d[DiscardReason.BAD_VERSION] == 1
    assert d[DiscardReason.BAD_LENGTH] == 1
    assert d[DiscardReason.ABORTED] == 1


def test_len_over_512_is_discarded() -> None:
    body = bytes([1, 1, 1, 0, 1]) + (513).to_bytes(2, "big") + bytes(513)
    wire = b"\x7e" + body + crc16_x25(body).to_bytes(2, "little") + b"\x7e"
    frames, decoder = decode_all(wire)
    assert frames == []
    assert decoder.stats.errors == 1


def test_largest_frame_with_every_byte_escaped_is_decoded() -> None:
    frame = Frame(FrameType.RESPONSE, 0x7E, 0x7D7E, bytes([0x7E, 0x7D]) * (MAX_PAYLOAD // 2))
    frames, _ = decode_all(encode_frame(frame))
    assert frames == [frame]


def test_boot_banner_then_frame() -> None:
    banner = b"".join(
        f"CH boot v1.{i} ...... checking flash bank {i} OK\r\n".encode() for i in range(60)
    )
    assert len(banner) > 2048 - 200
    frame = Frame(FrameType.EVENT, 0, 0xC0F0, b"\x00")
    frames, _ = decode_all(banner + encode_frame(frame), chunk=64)
    assert frames == [frame]


def test_megabyte_of_noise_without_flag_keeps_memory_bounded() -> None:
    rng = random.Random(1)
    frames: list[Frame] = []
    decoder = FrameDecoder(frames.append)
    peak = 0
    for _ in range(256):
        noise = bytes(rng.choice(range(0x00, 0x7E)) for _ in range(4096))
        decoder.feed(noise)
        peak = max(peak, decoder.buffered)
    assert peak <= MAX_ESCAPED_BODY
    frame = Frame(FrameType.EVENT, 3, 0x8F12)
    decoder.feed(encode_frame(frame))
    assert frames == [frame]  # resynced at the next flag at once
    assert decoder.stats.discarded[DiscardReason.OVERSIZE] >= 1


def test_handler_exception_does_not_escape_feed() -> None:
    def boom(frame: Frame) -> None:
        raise RuntimeError("consumer bug")

    decoder = FrameDecoder(boom)
    decoder.feed(encode_frame(Frame(FrameType.EVENT, 3, 0x8F12)))  # must not raise
    assert decoder.stats.frames == 1


frames_st = st.builds(
    Frame,
    ftype=st.sampled_from(list(FrameType)),
    seq=st.integers(0, 255),
    cmd=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=MAX_PAYLOAD),
)


@given(st.lists(frames_st, max_size=8), st.integers(1, 64))
def test_roundtrip_any_frames_any_chunking(frames: list[Frame], chunk: int) -> None:
    wire = b"".join(encode_frame(f) for f in frames)
    decoded, decoder = decode_all(wire, chunk)
    assert decoded == frames
    assert decoder.stats.errors == 0


@given(st.lists(frames_st, min_size=1, max_size=6), st.lists(st.binary(max_size=300), max_size=6))
def test_noise_between_frames_never_hides_a_valid_frame(
    frames: list[Frame], noise: list[bytes]
) -> None:
    # Noise may hold anything, flags included; each frame keeps its own flags.
    parts = []
    for i, frame in enumerate(frames):
        if i < len(noise):
            parts.append(noise[i])
        parts.append(encode_frame(frame))
    decoded, _ = decode_all(b"".join(parts), 7)
    # Noise can form a valid frame only by a CRC coincidence; all ours must be there in order.
    it = iter(decoded)
    assert all(any(f == d for d in it) for f in frames)


@settings(max_examples=300)
@given(frames_st, st.data())
def test_bit_flips_and_truncation_never_raise(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode_frame(frame))
    flips = data.draw(st.lists(st.integers(0, len(wire) * 8 - 1), max_size=4))
    for bit in flips:
        wire[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(wire)))
    follower = Frame(FrameType.EVENT, 1, 0x8F12)
    decoded, _ = decode_all(bytes(wire[:cut]) + encode_frame(follower))
    # Whatever happened to the first frame, the next one is always decoded.
    assert decoded[-1] == follower
    if not flips and cut == len(wire):
        assert decoded == [frame, follower]


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_and_stay_bounded(data: bytes) -> None:
    decoder = FrameDecoder(lambda f: None)
    decoder.feed(data)
    assert decoder.buffered <= MAX_ESCAPED_BODY
