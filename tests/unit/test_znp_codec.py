"""The ZNP MT codec, byte for byte against zigpy-znp's definitions, and the decoder's promises.

zigpy-znp is an independent implementation of the same protocol (a test-only dependency):
every frame we encode must serialise exactly as its definition of the same command, and
every frame it serialises must decode to the same facts here.
"""

from __future__ import annotations

import random

import zigpy_znp.commands as zc
import zigpy_znp.types as zt
from hypothesis import given, settings
from hypothesis import strategies as st
from zigpy_znp.commands.af import TransmitOptions
from zigpy_znp.frames import GeneralFrame, TransportFrame

from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.znp import commands as c
from gatewayd_drivers.znp.frames import (
    MAX_FRAME,
    CommandType,
    DiscardReason,
    FrameDecoder,
    MtFrame,
    Subsystem,
    encode_frame,
)

HUB_EUI = Eui64.parse("00-DB-12-34-56-78-90-A0")
CHANNELS_11_26 = list(range(11, 27))


def theirs(req: object) -> bytes:
    """zigpy-znp's wire bytes for one of its command objects."""
    return bytes(TransportFrame(req.to_frame()).serialize())  # type: ignore[attr-defined]


def decode_all(wire: bytes) -> list[MtFrame]:
    out: list[MtFrame] = []
    FrameDecoder(out.append).feed(wire)
    return out


def as_general(frame: MtFrame) -> GeneralFrame:
    header = zt.CommandHeader(0).with_id(frame.cmd_id)
    header = header.with_subsystem(zt.Subsystem(int(frame.subsystem)))
    header = header.with_type(zt.CommandType(int(frame.ftype)))
    return GeneralFrame(header, frame.data)


# --- requests we encode ------------------------------------------------------------------


def test_sys_requests_match_zigpy_znp() -> None:
    assert encode_frame(c.ping_req()) == theirs(zc.SYS.Ping.Req())
    assert encode_frame(c.version_req()) == theirs(zc.SYS.Version.Req())
    assert encode_frame(c.reset_req(c.ResetType.SOFT)) == theirs(
        zc.SYS.ResetReq.Req(Type=zt.ResetType.Soft)
    )
    assert encode_frame(c.reset_req(c.ResetType.HARD)) == theirs(
        zc.SYS.ResetReq.Req(Type=zt.ResetType.Hard)
    )


def test_ping_vector_by_hand() -> None:
    # SOF, LEN 0, CMD0 0x21 (SREQ | SYS), CMD1 0x01, FCS 0x00 ^ 0x21 ^ 0x01.
    assert encode_frame(c.ping_req()) == bytes.fromhex("fe00210120")


@given(st.lists(st.sampled_from(CHANNELS_11_26), min_size=1, unique=True))
def test_nv_chanlist_write_matches_zigpy_znp(channels: list[int]) -> None:
    mask = c.channel_mask(channels)
    ours = encode_frame(c.nv_write_req(c.NV_CHANLIST, mask.to_bytes(4, "little")))
    value = zt.Channels.from_channel_list(channels).serialize()
    assert ours == theirs(zc.SYS.OSALNVWrite.Req(Id=0x0084, Offset=0, Value=zt.ShortBytes(value)))


@given(
    st.lists(st.sampled_from(CHANNELS_11_26), min_size=1, unique=True),
    st.integers(0, 14),
)
def test_network_discovery_req_matches_zigpy_znp(channels: list[int], duration: int) -> None:
    ours = encode_frame(c.network_discovery_req(channels, duration))
    assert ours == theirs(
        zc.ZDO.NetworkDiscoveryReq.Req(
            Channels=zt.Channels.from_channel_list(channels), ScanDuration=duration
        )
    )


def test_zdo_requests_match_zigpy_znp() -> None:
    assert encode_frame(c.msg_callback_register_req(0x8038)) == theirs(
        zc.ZDO.MsgCallbackRegister.Req(ClusterId=0x8038)
    )
    assert encode_frame(c.startup_from_app_req(100)) == theirs(
        zc.ZDO.StartupFromApp.Req(StartDelay=100)
    )


@given(
    st.integers(0, 255),
    st.lists(st.sampled_from(CHANNELS_11_26), min_size=1, unique=True),
    st.integers(0, 5),
    st.integers(1, 5),
)
def test_energy_scan_request_matches_zigpy_znp(
    tsn: int, channels: list[int], duration: int, count: int
) -> None:
    import zigpy.zdo.types as zdo_t

    payload = c.mgmt_nwk_update_req(tsn, channels, duration, count)
    update = zdo_t.NwkUpdate(
        ScanChannels=zt.Channels.from_channel_list(channels),
        ScanDuration=duration,
        ScanCount=count,
    )
    assert payload == bytes([tsn]) + update.serialize()
    ours = c.af_data_request_ext(
        dst_nwk=0x0000,
        dst_endpoint=0,
        src_endpoint=0,
        cluster_id=0x0038,
        tsn=tsn,
        data=payload,
    )
    assert encode_frame(ours) == theirs(
        zc.AF.DataRequestExt.Req(
            DstAddrModeAddress=zt.AddrModeAddress(mode=zt.AddrMode.NWK, address=0x0000),
            DstEndpoint=0,
            DstPanId=0x0000,
            SrcEndpoint=0,
            ClusterId=0x0038,
            TSN=tsn,
            Options=TransmitOptions.NONE,
            Radius=30,
            Data=zt.LongBytes(payload),
        )
    )


# --- answers and callbacks we decode -------------------------------------------------------


def test_srsp_answers_decode_like_zigpy_znp() -> None:
    ping = theirs(zc.SYS.Ping.Rsp(Capabilities=zt.MTCapabilities(0x0659)))
    (frame,) = decode_all(ping)
    assert c.Cmd.SYS_PING.answered_by(frame)
    assert c.decode_ping(frame.data) == 0x0659

    version = theirs(
        zc.SYS.Version.Rsp(
            TransportRev=2,
            ProductId=1,
            MajorRel=2,
            MinorRel=7,
            MaintRel=1,
            CodeRevision=20210708,
            BootloaderBuildType=zc.sys.BootloaderBuildType.NON_BOOTLOADER_BUILD,
            BootloaderRevision=0xFFFFFFFF,
        )
    )
    (frame,) = decode_all(version)
    v = c.Version.decode(frame.data)
    assert (v.major, v.minor, v.maint, v.code_revision) == (2, 7, 1, 20210708)
    assert v.bootloader_revision == 0xFFFFFFFF
    assert encode_frame(c.Cmd.SYS_VERSION.response(v.encode())) == version

    old = c.Version.decode(bytes([2, 0, 2, 6, 3]))  # Z-Stack 1.2 sends only five bytes
    assert old.code_revision is None
    assert encode_frame(c.Cmd.SYS_VERSION.response(old.encode())) == theirs(
        zc.SYS.Version.Rsp(TransportRev=2, ProductId=0, MajorRel=2, MinorRel=6, MaintRel=3)
    )


def test_reset_ind_decodes_like_zigpy_znp() -> None:
    wire = theirs(
        zc.SYS.ResetInd.Callback(
            Reason=zt.ResetReason.External,
            TransportRev=2,
            ProductId=1,
            MajorRel=2,
            MinorRel=7,
            MaintRel=1,
        )
    )
    (frame,) = decode_all(wire)
    assert c.Cmd.SYS_RESET_IND.matches(frame)
    ind = c.ResetInd.decode(frame.data)
    assert (ind.reason, ind.major, ind.minor) == (1, 2, 7)
    assert encode_frame(c.Cmd.SYS_RESET_IND.frame(ind.encode())) == wire


beacons = st.builds(
    c.Beacon,
    src=st.integers(0, 0xFFFF),
    pan_id=st.integers(0, 0xFFFF),
    channel=st.integers(11, 26),
    permit_joining=st.booleans(),
    router_capacity=st.integers(0, 1),
    device_capacity=st.integers(0, 1),
    protocol_version=st.integers(0, 255),
    stack_profile=st.integers(0, 255),
    lqi=st.integers(0, 255),
    depth=st.integers(0, 15),
    update_id=st.integers(0, 255),
    extended_pan_id=st.binary(min_size=8, max_size=8).map(Eui64),
)


def zigpy_beacon(b: c.Beacon) -> zt.Beacon:
    return zt.Beacon(
        Src=b.src,
        PanId=b.pan_id,
        Channel=b.channel,
        PermitJoining=int(b.permit_joining),
        RouterCapacity=b.router_capacity,
        DeviceCapacity=b.device_capacity,
        ProtocolVersion=b.protocol_version,
        StackProfile=b.stack_profile,
        LQI=b.lqi,
        Depth=b.depth,
        UpdateId=b.update_id,
        # zigpy parses the text form most significant byte first, like the hub's label.
        ExtendedPanId=zt.ExtendedPanId.convert(str(b.extended_pan_id).replace("-", ":")),
    )


@given(st.lists(beacons, max_size=10))
def test_beacon_notify_matches_zigpy_znp_both_ways(items: list[c.Beacon]) -> None:
    wire = theirs(zc.ZDO.BeaconNotifyInd.Callback(Beacons=[zigpy_beacon(b) for b in items]))
    (frame,) = decode_all(wire)
    assert c.Cmd.ZDO_BEACON_NOTIFY_IND.matches(frame)
    assert list(c.decode_beacons(frame.data)) == items
    assert encode_frame(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons(items))) == wire


def test_extended_pan_id_byte_order() -> None:
    """zigpy puts the least significant byte first on the wire; labels read MSB first."""
    b = c.Beacon(0, 0x1A2B, 15, False, 1, 1, 2, 2, 200, 0, 0, HUB_EUI)
    raw = b.encode()
    assert raw[13:21] == bytes.fromhex("a09078563412db00")
    parsed = zc.ZDO.BeaconNotifyInd.Callback.from_frame(
        as_general(c.Cmd.ZDO_BEACON_NOTIFY_IND.frame(c.encode_beacons([b])))
    )
    assert str(parsed.Beacons[0].ExtendedPanId) == "00:db:12:34:56:78:90:a0"


def test_discovery_confirm_and_state_change_decode_like_zigpy_znp() -> None:
    (cnf,) = decode_all(theirs(zc.ZDO.NwkDiscoveryCnf.Callback(Status=zt.ZDOStatus.SUCCESS)))
    assert c.Cmd.ZDO_NWK_DISCOVERY_CNF.matches(cnf) and cnf.data == b"\x00"
    (state,) = decode_all(
        theirs(zc.ZDO.StateChangeInd.Callback(State=zt.DeviceState.StartedAsCoordinator))
    )
    assert c.Cmd.ZDO_STATE_CHANGE_IND.matches(state)
    assert state.data[0] == c.DeviceState.STARTED_AS_COORDINATOR
    (confirm,) = decode_all(
        theirs(zc.AF.DataConfirm.Callback(Status=zt.Status.SUCCESS, Endpoint=0, TSN=9))
    )
    assert c.DataConfirm.decode(confirm.data) == c.DataConfirm(0, 0, 9)


@given(
    st.integers(0, 255),
    st.lists(st.sampled_from(CHANNELS_11_26), min_size=1, unique=True).map(sorted),
    st.data(),
)
def test_energy_notify_decodes_like_zigpy(
    tsn: int, channels: list[int], data: st.DataObject
) -> None:
    import zigpy.zdo.types as zdo_t

    energies = data.draw(
        st.lists(st.integers(0, 255), min_size=len(channels), max_size=len(channels))
    )
    notify = c.NwkUpdateNotify(0, tuple(channels), 17, 2, tuple(energies))
    msg = c.ZdoMsg(0x0000, False, 0x8038, 0, tsn, 0x0000, notify.encode())
    wire = encode_frame(c.Cmd.ZDO_MSG_CB_INCOMING.frame(msg.encode()))
    (frame,) = decode_all(wire)
    parsed = zc.ZDO.MsgCbIncoming.Callback.from_frame(as_general(frame))
    assert (parsed.ClusterId, parsed.TSN, parsed.Src) == (0x8038, tsn, 0x0000)
    # zigpy prepends the TSN to the data before it parses the ZDO answer.
    import zigpy.types as zigpy_types

    names, types = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Mgmt_NWK_Update_rsp]
    values, rest = zigpy_types.deserialize(bytes(parsed.Data), types)
    fields = dict(zip(names, values, strict=True))
    assert rest == b""
    assert list(fields["ScannedChannels"]) == channels
    assert list(fields["EnergyValues"]) == energies
    decoded = c.NwkUpdateNotify.decode(c.ZdoMsg.decode(frame.data).data)
    assert decoded.by_channel() == dict(zip(channels, energies, strict=True))


# --- the decoder's promises -----------------------------------------------------------------

frames = st.builds(
    MtFrame,
    st.sampled_from(list(CommandType)),
    st.sampled_from(list(Subsystem)),
    st.integers(0, 255),
    st.binary(max_size=250),
)


@given(st.lists(frames, max_size=6), st.data())
def test_frames_survive_any_chunking(items: list[MtFrame], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(f) for f in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    out: list[MtFrame] = []
    dec = FrameDecoder(out.append)
    prev = 0
    for cut in [*cuts, len(wire)]:
        dec.feed(wire[prev:cut])
        prev = cut
    assert out == items
    assert dec.buffered == 0


@settings(max_examples=300)
@given(st.binary(max_size=2000))
def test_garbage_never_raises_and_the_buffer_stays_bounded(junk: bytes) -> None:
    dec = FrameDecoder(lambda f: None)
    for i in range(0, len(junk), 37):
        dec.feed(junk[i : i + 37])
        assert dec.buffered <= MAX_FRAME


@given(frames, st.integers(1, 250), st.binary(max_size=20))
def test_a_false_length_byte_does_not_stall_the_frame_behind_it(
    frame: MtFrame, false_len: int, junk: bytes
) -> None:
    wire = encode_frame(frame)
    # A corrupted frame start: SOF, a length that runs over the real frame, a few bytes.
    out: list[MtFrame] = []
    dec = FrameDecoder(out.append)
    dec.feed(bytes([0xFE, false_len]) + junk.replace(b"\xfe", b"\x00") + wire)
    assert frame in out


def test_bad_fcs_resyncs_on_the_next_sof_at_once() -> None:
    good = encode_frame(c.ping_req())
    broken = bytearray(encode_frame(c.version_req()))
    broken[-1] ^= 0xFF
    reasons: list[DiscardReason] = []
    out: list[MtFrame] = []
    FrameDecoder(out.append, lambda r, n: reasons.append(r)).feed(bytes(broken) + good)
    assert out == [c.ping_req()]
    assert DiscardReason.BAD_FCS in reasons


def test_length_above_250_is_dropped_at_once() -> None:
    out: list[MtFrame] = []
    dec = FrameDecoder(out.append)
    dec.feed(bytes([0xFE, 251]) + encode_frame(c.ping_req()))
    assert out == [c.ping_req()]
    assert dec.stats.discarded[DiscardReason.BAD_LENGTH] == 1


def test_a_handler_that_raises_does_not_stop_decoding() -> None:
    seen: list[MtFrame] = []

    def handler(f: MtFrame) -> None:
        seen.append(f)
        raise RuntimeError("consumer bug")

    FrameDecoder(handler).feed(encode_frame(c.ping_req()) * 2)
    assert len(seen) == 2


def test_short_payloads_raise_payload_error() -> None:
    import pytest

    with pytest.raises(c.PayloadError):
        c.decode_beacons(bytes([2]) + bytes(21))
    with pytest.raises(c.PayloadError):
        c.NwkUpdateNotify.decode(bytes(5))
    with pytest.raises(c.PayloadError):
        c.Version.decode(b"\x02")
    with pytest.raises(ValueError, match=r"11\.\.26"):
        c.channel_mask([27])


def test_status_answers_and_rpc_errors_match_zigpy_znp() -> None:
    ok = zt.Status.SUCCESS
    for ours, their in [
        (c.Cmd.SYS_OSAL_NV_WRITE, zc.SYS.OSALNVWrite.Rsp(Status=ok)),
        (c.Cmd.ZDO_NETWORK_DISCOVERY_REQ, zc.ZDO.NetworkDiscoveryReq.Rsp(Status=ok)),
        (c.Cmd.ZDO_MSG_CALLBACK_REGISTER, zc.ZDO.MsgCallbackRegister.Rsp(Status=ok)),
        (c.Cmd.AF_DATA_REQUEST_EXT, zc.AF.DataRequestExt.Rsp(Status=ok)),
    ]:
        (frame,) = decode_all(theirs(their))
        assert ours.answered_by(frame), ours
        assert c.decode_status(frame.data, ours.name) == 0
    (frame,) = decode_all(
        theirs(zc.ZDO.StartupFromApp.Rsp(State=zc.zdo.StartupState.NewNetworkState))
    )
    assert c.Cmd.ZDO_STARTUP_FROM_APP.answered_by(frame) and frame.data == b"\x01"
    # What a stick says to a command it does not know: the request's CMD0/CMD1 echoed.
    req = c.msg_callback_register_req(0x8038)
    rpc = theirs(
        zc.RPCError.CommandNotRecognized.Rsp(
            ErrorCode=zc.rpc_error.ErrorCode.InvalidCommandId,
            RequestHeader=as_general(req).header,
        )
    )
    (frame,) = decode_all(rpc)
    assert (frame.ftype, frame.subsystem, frame.cmd_id) == (
        CommandType.SRSP,
        Subsystem.RPC_ERROR,
        0,
    )
    assert frame.data == bytes((c.RpcErrorCode.INVALID_COMMAND_ID, req.cmd0, req.cmd_id))


def test_status_and_startup_enums_match_zigpy_znp() -> None:
    for status in c.MtStatus:
        assert zt.Status[status.name] == status, status
    assert c.MtStatus.MAC_NO_BEACON == 0xEA
    theirs_by_ours = {
        c.StartupState.RESTORED_NETWORK: zc.zdo.StartupState.RestoredNetworkState,
        c.StartupState.NEW_NETWORK: zc.zdo.StartupState.NewNetworkState,
        c.StartupState.NOT_STARTED: zc.zdo.StartupState.NotStarted,
    }
    assert set(theirs_by_ours) == set(c.StartupState)
    for ours, their in theirs_by_ours.items():
        assert int(ours) == int(their)


def test_thousands_of_false_starts_lose_almost_nothing() -> None:
    """5000 false frame starts (SOF and a long length) in front of 5000 frames, fed whole, in
    mid-sized chunks and byte by byte. A false start is dropped at a reserved type, a bad
    FCS, or a complete frame behind it; only one whose type and FCS both check out by
    chance (about 1 in 512) while its whole length is buffered can take frames with it."""
    from collections import Counter

    rng = random.Random(7)
    items = [
        MtFrame(CommandType.AREQ, Subsystem.ZDO, 0xC5, rng.randbytes(rng.randint(0, 60)))
        for _ in range(5000)
    ]
    wire = b"".join(bytes((0x11, 0xFE, rng.randint(60, 250))) + encode_frame(f) for f in items)
    for chunk in (len(wire), 4096, 97, 1):
        out: list[MtFrame] = []
        dec = FrameDecoder(out.append)
        for i in range(0, len(wire), chunk):
            dec.feed(wire[i : i + chunk])
        lost = sum((Counter(items) - Counter(out)).values())
        assert lost <= 3, (chunk, lost)
        assert (
            dec.stats.discarded[DiscardReason.FALSE_START]
            + dec.stats.discarded[DiscardReason.BAD_TYPE]
            + dec.stats.discarded[DiscardReason.BAD_FCS]
            >= 4900
        )
