"""LSP payload records: round trips, tolerance of extra bytes, short payloads, unknown enums."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.commshub.messages import (
    Band,
    ConnectedToEsme,
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLog,
    DeviceLogAdd,
    DeviceLogChanged,
    DeviceLogEntry,
    DeviceLogRemove,
    DeviceType,
    DisconnectedFromEsme,
    EventCode,
    HanState,
    HanStateChanged,
    HanStatus,
    HubEvent,
    HubInfo,
    HubStarted,
    HwVariant,
    JoinFailReason,
    JoinState,
    KnownEvent,
    PayloadError,
    RegState,
    StartReason,
    ThreeLostGsmeSearchesFailed,
    UnknownEvent,
    WanState,
    WanStateChanged,
    WanStatus,
    decode_event,
    event_code,
)

EUI = Eui64.parse("00-DB-12-34-56-78-90-A0")

eui_st = st.binary(min_size=8, max_size=8).map(Eui64)
u8 = st.integers(0, 255)
u32 = st.integers(0, 0xFFFFFFFF)
rssi_st = st.one_of(st.none(), st.integers(-128, 126))

wan_st = st.builds(
    WanStatus,
    state=st.one_of(st.sampled_from(list(WanState)), u8),
    reg_state=st.one_of(st.sampled_from(list(RegState)), u8),
    rssi_dbm=rssi_st,
    seconds_in_state=u32,
    last_dcc_contact_s=st.one_of(st.none(), st.integers(0, 0xFFFFFFFE)),
    attach_attempts=st.integers(0, 0xFFFF),
)
han_st = st.builds(
    HanStatus,
    state=st.sampled_from(list(HanState)),
    channel=st.integers(11, 26),
    subghz_channel=st.one_of(st.none(), st.integers(0, 0xFE)),
    pan_id=st.integers(0, 0xFFFF),
    extended_pan_id=eui_st,
    open_join_windows=st.integers(0, 0xFFFF),
)
entry_st = st.builds(
    DeviceLogEntry,
    eui64=eui_st,
    device_type=st.sampled_from(list(DeviceType)),
    join_state=st.sampled_from(list(JoinState)),
    band=st.sampled_from(list(Band)),
    rssi_dbm=rssi_st,
    lqi=u8,
    last_comms_s=st.one_of(st.none(), st.integers(0, 0xFFFFFFFE)),
)
info_st = st.builds(
    HubInfo,
    eui64=eui_st,
    hw_variant=st.sampled_from(list(HwVariant)),
    wan_variant=u8,
    csp_region=u8,
    firmware=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    uptime_s=u32,
)


@given(wan_st, st.binary(max_size=8))
def test_wan_status_roundtrip_ignores_trailing_bytes(rec: WanStatus, extra: bytes) -> None:
    raw = rec.encode()
    assert len(raw) == 13
    assert WanStatus.decode(raw + extra) == rec


@given(han_st)
def test_han_status_roundtrip(rec: HanStatus) -> None:
    assert len(rec.encode()) == 15
    assert HanStatus.decode(rec.encode()) == rec


@given(st.lists(entry_st, max_size=16))
def test_device_log_roundtrip(entries: list[DeviceLogEntry]) -> None:
    log = DeviceLog(tuple(entries))
    assert DeviceLog.decode(log.encode()) == log


@given(info_st)
def test_info_roundtrip(rec: HubInfo) -> None:
    assert HubInfo.decode(rec.encode()) == rec


@given(eui_st, st.sampled_from(list(DeviceType)), st.binary(min_size=16, max_size=16))
def test_device_log_add_roundtrip(eui: Eui64, dtype: DeviceType, code: bytes) -> None:
    req = DeviceLogAdd(eui, dtype, code, 600)
    raw = req.encode()
    assert len(raw) == 27
    assert raw[:8] == eui.raw
    assert raw[-2:] == b"\x02\x58"  # u16 big-endian
    assert DeviceLogAdd.decode(raw) == req


@pytest.mark.parametrize(
    ("decoder", "size"),
    [
        (WanStatus.decode, 13),
        (HanStatus.decode, 15),
        (DeviceLogEntry.decode, 17),
        (DeviceLogAdd.decode, 27),
        (DeviceLogRemove.decode, 8),
    ],
)
def test_short_payloads_are_errors(decoder: object, size: int) -> None:
    assert callable(decoder)
    with pytest.raises(PayloadError):
        decoder(bytes(size - 1))


def test_device_log_count_larger_than_entries_is_an_error() -> None:
    with pytest.raises(PayloadError):
        DeviceLog.decode(bytes([2]) + bytes(17))


def test_unknown_enum_values_pass_through_as_numbers() -> None:
    raw = bytes([9, 7, 0x80]) + bytes(10)
    rec = WanStatus.decode(raw)
    assert rec.state == 9 and not isinstance(rec.state, WanState)
    assert rec.reg_state == 7
    assert rec.rssi_dbm == -128
    assert rec.encode() == raw


def test_rssi_unknown_and_never_contacted() -> None:
    rec = WanStatus.decode(bytes([1, 2, 127]) + bytes(4) + b"\xff" * 4 + bytes(2))
    assert rec.rssi_dbm is None
    assert rec.last_dcc_contact_s is None


def test_events_decode_by_cmd() -> None:
    assert decode_event(0x8F49, EUI.raw) == DeviceJoinSucceeded(EUI)
    assert decode_event(0x8F48, EUI.raw + b"\x01") == DeviceJoinFailed(
        EUI, JoinFailReason.KEY_ESTABLISHMENT_FAILED
    )
    assert decode_event(0xC0F0, b"\x01") == HubStarted(StartReason.WATCHDOG)
    wan = WanStatus(WanState.CONNECTED, RegState.REGISTERED_HOME, -71, 3, 0, 1)
    assert decode_event(0xC010, wan.encode()) == WanStateChanged(wan)
    assert decode_event(0xBEEF, b"\x01\x02") == UnknownEvent(0xBEEF, b"\x01\x02")
    assert event_code(HubStarted(StartReason.POWER_ON)) == EventCode.HUB_STARTED
    with pytest.raises(PayloadError):
        decode_event(0x8F48, EUI.raw)


known_event_st: st.SearchStrategy[KnownEvent] = st.one_of(
    st.just(DeviceLogChanged()),
    st.builds(DeviceJoinSucceeded, eui_st),
    st.builds(DeviceJoinFailed, eui_st, st.one_of(st.sampled_from(list(JoinFailReason)), u8)),
    st.builds(ConnectedToEsme, eui_st),
    st.builds(DisconnectedFromEsme, eui_st),
    st.builds(ThreeLostGsmeSearchesFailed, eui_st),
    st.builds(WanStateChanged, wan_st),
    st.builds(HanStateChanged, han_st),
    st.builds(HubStarted, st.one_of(st.sampled_from(list(StartReason)), u8)),
)


def test_event_table_lists_every_known_event_once() -> None:
    records = [code.record for code in EventCode]
    assert len(set(records)) == len(records)
    # The union the type checker sees and the table the decoder uses name the same records.
    assert set(records) == set(typing.get_args(KnownEvent))


def test_event_table_keeps_the_spec_codes() -> None:
    # The wire numbers of spec section 6; a reordered or retyped table entry shows here.
    assert {code.name: int(code) for code in EventCode} == {
        "CHF_DEVICE_LOG_CHANGED": 0x8F12,
        "DEVICE_JOIN_SUCCEEDED": 0x8F49,
        "DEVICE_JOIN_FAILED": 0x8F48,
        "CH_CONNECTED_TO_ESME": 0x81A2,
        "CH_DISCONNECTED_FROM_ESME": 0x81A3,
        "THREE_LOST_GSME_SEARCHES_FAILED": 0x8F29,
        "WAN_STATE_CHANGED": 0xC010,
        "HAN_STATE_CHANGED": 0xC020,
        "HUB_STARTED": 0xC0F0,
    }
    assert EventCode(0xC0F0) is EventCode.HUB_STARTED
    assert EventCode.HUB_STARTED.record is HubStarted


@given(known_event_st)
def test_every_event_roundtrips_through_its_code(event: KnownEvent) -> None:
    code = event_code(event)
    assert EventCode(code).record is type(event)
    assert decode_event(code, event.encode()) == event


@given(st.integers(0, 0xFFFF).filter(lambda n: n not in set(EventCode)), st.binary(max_size=20))
def test_unlisted_codes_pass_through_raw(cmd: int, payload: bytes) -> None:
    event: HubEvent = decode_event(cmd, payload)
    assert event == UnknownEvent(cmd, payload)
    assert event_code(event) == cmd
    assert event.encode() == payload


def test_eui64_label_form() -> None:
    assert EUI.raw == bytes.fromhex("00DB1234567890A0")
    assert str(EUI) == "00-DB-12-34-56-78-90-A0"
    assert Eui64.parse("00-db-12-34-56-78-90-a0") == EUI
    for bad in ("00DB1234567890A0", "00-DB-12-34-56-78-90", "00-DB-12-34-56-78-90-ZZ"):
        with pytest.raises(ValueError, match="EUI-64"):
            Eui64.parse(bad)
