"""The IEC 62056-21 reader against the simulated meters over real pseudo-terminals.

The baud switch is checked through ``termios.tcgetattr``: the simulator records the speed
the reader had set when each message was exchanged, and a readout sent at another speed
than the reader's arrives as noise, as on a real line.
"""

from __future__ import annotations

import asyncio
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gatewayd_drivers.iec62056.errors import (
    BccError,
    IdentificationError,
    OpticalTimeout,
    PortError,
    ReadoutError,
)
from gatewayd_drivers.iec62056.line import OpticalLine, iec_settings
from gatewayd_drivers.iec62056.reader import MeterReading, ReaderTimings, ReadOptions, read_meter
from gatewayd_sim.optical.meter import OpticalMeterSim
from gatewayd_sim.optical.profile import Faults, MeterProfile, load_meter, shipped_meter

# Short enough for fast tests, long enough for a loaded machine; the meters answer in 0.2 s.
FAST = ReaderTimings(
    identification_s=1.5,
    readout_first_byte_s=1.5,
    inter_char_s=0.5,
    retry_pause_s=0.3,
    wakeup_s=0.2,
    wakeup_pause_s=0.1,
)


@pytest.fixture
async def meter(tmp_path: Path) -> AsyncIterator[Callable[[MeterProfile], OpticalMeterSim]]:
    sims: list[OpticalMeterSim] = []

    def make(profile: MeterProfile) -> OpticalMeterSim:
        sim = OpticalMeterSim(profile, tmp_path / f"probe{len(sims)}")
        sim.port.open()
        sims.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in sims:
            await sim.stop()


def profile(name: str, **changes: object) -> MeterProfile:
    p = load_meter(shipped_meter(name))
    return p.model_copy(update=changes) if changes else p


async def read(sim: OpticalMeterSim, **opts: object) -> MeterReading:
    options = ReadOptions(timings=FAST, **opts)  # type: ignore[arg-type]
    return await read_meter(str(sim.link), options)


def values(reading: MeterReading) -> dict[str, tuple[str, str | None]]:
    return {ds.address: (ds.value, ds.unit) for ds in reading.data_sets}


async def test_single_phase_credit_meter_switches_to_9600(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("single_phase_credit"))
    reading = await read(sim)
    ident = reading.identification
    assert (ident.manufacturer, ident.baud_char, ident.enhanced, ident.identification) == (
        "ELS",
        "5",
        ("2",),
        "SP100-C",
    )
    assert reading.baudrate == 9600 and not reading.baud_switch_failed
    v = values(reading)
    assert v["1.8.0"] == ("012345.6", "kWh")
    assert v["32.7"] == ("241.3", "V")
    assert v["31.7"] == ("004.21", "A")
    assert v["C.1.0"] == ("31415926", None)
    assert len(reading.data_sets) == 10
    # Sign-on and identification at 300 baud, the readout at the agreed 9600 (termios).
    speeds = {e.kind: e.client_baud for e in sim.events}
    assert sim.kinds() == ["sign_on", "identification", "ack", "readout"]
    assert speeds == {"sign_on": 300, "identification": 300, "ack": 300, "readout": 9600}
    assert sim.events[2].detail == "5"


async def test_polyphase_meter_at_19200_with_full_obis_addresses(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("polyphase"))
    reading = await read(sim)
    assert reading.baudrate == 19200
    assert sim.events[-1].kind == "readout" and sim.events[-1].client_baud == 19200
    v = values(reading)
    assert v["1-0:52.7.0*255"] == ("240.6", "V")
    assert v["1-0:72.7.0*255"] == ("238.9", "V")
    md = reading.find("1-0:1.6.0*255")
    assert md is not None and [x.value for x in md.values] == ["012.50", "2411281745"]


async def test_max_baudrate_caps_the_switch(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("polyphase"))
    reading = await read(sim, max_baudrate=4800)
    assert reading.baudrate == 4800
    assert sim.events[2].detail == "4" and sim.events[-1].client_baud == 4800


async def test_twin_element_and_two_rate_meters(meter) -> None:  # type: ignore[no-untyped-def]
    twin = await read(meter(profile("twin_element")))
    assert values(twin)["1-2:1.8.0"] == ("008765.4", "kWh")
    assert values(twin)["1-1:1.8.2"] == ("011223.3", "kWh")
    two_rate = await read(meter(profile("two_rate_single_element")))
    assert two_rate.baudrate == 4800
    assert values(two_rate)["1.8.2"] == ("021098.7", "kWh")


async def test_ct_meter_gives_its_transformer_ratio_registers(meter) -> None:  # type: ignore[no-untyped-def]
    reading = await read(meter(profile("ct_operated")))
    v = values(reading)
    assert v["1-0:0.4.2*255"] == ("200", "A")
    assert v["1-0:0.4.5*255"] == ("5", "A")


async def test_meter_without_baud_switching_is_read_at_300(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fixed_300"))
    reading = await read(sim)
    assert reading.baudrate == 300 and not reading.baud_switch_failed
    assert sim.events[2].detail == "0"
    assert all(e.client_baud == 300 for e in sim.events)
    # The pty is left at 300 baud: a second read must open it although 7E1 at the speed it
    # already has is refused (EINVAL), and its sign-on still goes out at 300.
    assert sim.client_baud() == 300
    again = await read(sim)
    assert values(again) == values(reading)


async def test_meter_that_ignores_the_baud_switch_is_read_again_at_300(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_no_baud_switch"))
    reading = await read(sim)
    assert reading.baudrate == 300 and reading.baud_switch_failed
    assert reading.first_error is not None and reading.first_error.startswith("readout")
    assert sim.kinds() == [
        "sign_on",
        "identification",
        "ack",
        "noise",
        "sign_on",
        "identification",
        "ack",
        "readout",
    ]
    assert sim.events[3].client_baud == 9600  # we had switched; the meter had not
    assert sim.events[7].client_baud == 300
    assert values(reading)["1-0:32.7.0*255"] == ("239.8", "V")


async def test_without_the_fallback_a_failed_switch_is_an_error(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_no_baud_switch"))
    with pytest.raises((OpticalTimeout, ReadoutError)) as info:
        await read(sim, fallback_to_300=False)
    assert info.value.step == "readout"


async def test_baud_switch_can_be_turned_off(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("single_phase_credit"))
    reading = await read(sim, baud_switch=False)
    assert reading.baudrate == 300 and sim.events[2].detail == "0"
    assert sim.events[-1].client_baud == 300


async def test_wrong_bcc_is_reported(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_wrong_bcc"))
    with pytest.raises(BccError, match="block check character") as info:
        await read(sim, fallback_to_300=False)
    assert info.value.step == "readout"


async def test_wrong_bcc_stays_wrong_at_300(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_wrong_bcc"))
    with pytest.raises(BccError):
        await read(sim)
    assert sim.kinds().count("readout") == 2


async def test_no_answer_times_out_at_the_identification(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_no_answer"))
    with pytest.raises(OpticalTimeout, match="no answer") as info:
        await read(sim)
    assert info.value.step == "identification"
    assert sim.kinds() == ["sign_on"]


async def test_slow_answer_within_the_time_allowed_is_read(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_slow_answer", reaction_s=0.5, faults=Faults(slow_answer_s=0.6)))
    slow = ReaderTimings(identification_s=3.0, readout_first_byte_s=3.0, inter_char_s=0.5)
    reading = await read_meter(str(sim.link), ReadOptions(timings=slow))
    assert values(reading)["32.7"] == ("241.3", "V")


async def test_answer_slower_than_allowed_times_out(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_slow_answer"))  # 2 s to answer
    with pytest.raises(OpticalTimeout) as info:
        await read_meter(str(sim.link), ReadOptions(timings=ReaderTimings(identification_s=0.8)))
    assert info.value.step == "identification"


async def test_garbled_identification_is_an_identification_error(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_garbled_identification"))
    with pytest.raises(IdentificationError) as info:
        await read(sim)
    assert info.value.step == "identification"
    assert "ack" not in sim.kinds()


async def test_battery_meter_needs_the_wake_up(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("battery"))
    with pytest.raises(OpticalTimeout):
        await read(sim)
    assert sim.events[-1].kind == "ignored"
    reading = await read(sim, wake_up=True)
    assert values(reading)["32.7"] == ("240.0", "V")
    assert reading.baudrate == 4800


async def test_missing_port_is_a_port_error(tmp_path: Path) -> None:
    with pytest.raises(PortError, match="no serial port at"):
        await read_meter(str(tmp_path / "nothing"), ReadOptions(timings=FAST))


async def test_line_is_set_7e1_at_300_as_a_real_port_needs(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("single_phase_credit"))
    line = await OpticalLine.open(str(sim.link), iec_settings(300), timeout_s=2)
    async with line:
        ser = line.serial
        assert (ser.baudrate, ser.byte_size, ser.parity, ser.stopbits) == (300, 7, "E", 1)
        fd = ser.fileno()
        assert termios.tcgetattr(fd)[5] == termios.B300
        await line.set_baudrate(9600)
        assert termios.tcgetattr(fd)[5] == termios.B9600
        # The same speed again: the pty refuses it (EINVAL) and the line tolerates that.
        await line.set_baudrate(9600)
        assert line.baudrate == 9600


async def test_speed_changes_only_once_the_written_bytes_have_left_the_wire(meter) -> None:  # type: ignore[no-untyped-def]
    # tcdrain returns as soon as a USB head (or a pty) holds the bytes, but at 300 baud 7E1 an
    # acknowledgement of 6 characters takes 6 x 10 bits / 300 = 200 ms to shift out.
    sim = meter(profile("single_phase_credit"))
    line = await OpticalLine.open(str(sim.link), iec_settings(300), timeout_s=2)
    async with line:
        loop = asyncio.get_running_loop()
        line.write(b"\x06050\r\n")
        written = loop.time()
        await line.set_baudrate(9600)
        assert loop.time() - written >= 0.2 - 0.005  # lower bound only: load can only add
        # At 9600 the same bytes take 6 ms: a second switch right after does not wait long.
        line.write(b"\x06050\r\n")
        await line.set_baudrate(300)
        assert line.baudrate == 300


async def test_probe_pulled_during_the_read_is_a_port_error(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_slow_answer"))
    asyncio.get_running_loop().call_later(0.3, sim.port.unplug)
    with pytest.raises(PortError, match="lost the port") as info:
        await read(sim)
    assert info.value.step == "identification"


async def test_echo_of_our_own_requests_is_skipped(meter) -> None:  # type: ignore[no-untyped-def]
    sim = meter(profile("fault_echo"))
    reading = await read(sim)
    assert reading.baudrate == 9600 and not reading.baud_switch_failed
    assert values(reading)["32.7"] == ("241.3", "V")
