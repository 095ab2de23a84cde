"""One IEC 62056-21 mode C data readout through the optical probe, start to finish.

Bytes -> frames -> **meter state**: the session the kit runs to read an existing meter:

1. optionally wake a battery meter: NUL bytes at 300 baud for ``wakeup_s``, then a pause;
2. sign on at 300 baud 7E1 (``/?!`` CR LF) and read the identification message;
3. acknowledge with option select ``ACK 0 Z 0`` CR LF, choosing the fastest baud rate both
   sides support, and switch the port to it once the acknowledgement has left the port;
4. read the data message ``STX ... ! CR LF ETX BCC``, check its BCC and parse its data sets.

When the readout fails after a baud switch (a meter that announces a rate it does not really
switch to), the session is repeated once at 300 baud without switching, after the meter's
own inactivity reset. Every step has a timeout and raises a typed ``OpticalError``.

The timers are protocol timers (IEC 62056-21's reaction and inter-character times): they
run in real time on the event loop and never on a site clock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from gatewayd_drivers.iec62056.errors import IdentificationError, OpticalError, PortError
from gatewayd_drivers.iec62056.line import OpticalLine, iec_settings
from gatewayd_drivers.iec62056.protocol import (
    MAX_IDENTIFICATION_LEN,
    NUL,
    Identification,
    ack_option_select,
    baud_char_for,
    parse_identification,
    sign_on,
)
from gatewayd_drivers.iec62056.readout import DataSet, extract_data_message, parse_data_block

__all__ = ["MeterReading", "ReadOptions", "ReaderTimings", "read_meter"]

_log = logging.getLogger(__name__)

INITIAL_BAUD = 300


@dataclass(frozen=True, slots=True)
class ReaderTimings:
    """Seconds for each step. Defaults follow IEC 62056-21's limits with room for 300 baud.

    The meter answers between 200 ms and 1.5 s after a message (reaction time), and leaves
    at most 1.5 s between characters; an identification of up to 31 characters takes about
    1 s at 300 baud, so its whole step gets 3 s.
    """

    open_s: float = 5.0
    identification_s: float = 3.0
    readout_first_byte_s: float = 3.0
    inter_char_s: float = 1.5
    readout_total_s: float = 120.0
    # Battery meters: NULs for 2.1 to 2.3 s, then 1.5 to 1.7 s before the sign-on.
    wakeup_s: float = 2.2
    wakeup_pause_s: float = 1.6
    # A meter returns to its start state after 1.5 s without traffic; wait a little longer.
    retry_pause_s: float = 2.0
    # Our own reaction time before the acknowledgement: the standard's minimum of 200 ms,
    # so a meter still turning its line around hears the whole message.
    ack_delay_s: float = 0.2

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"reader timing {name} must be greater than 0, got {value}")


@dataclass(frozen=True, slots=True)
class ReadOptions:
    device_address: str = ""
    wake_up: bool = False
    baud_switch: bool = True
    max_baudrate: int = 19200
    fallback_to_300: bool = True
    timings: ReaderTimings = field(default_factory=ReaderTimings)

    def __post_init__(self) -> None:
        baud_char_for(self.max_baudrate)  # a mode C rate, or ValueError
        sign_on(self.device_address)  # a valid address, or ValueError


@dataclass(frozen=True, slots=True)
class MeterReading:
    """What one readout gave."""

    identification: Identification
    data_sets: tuple[DataSet, ...]
    baudrate: int  # the speed the data message came at
    baud_switch_failed: bool = False  # read at 300 baud after a failed switch
    first_error: str | None = None  # why the switched attempt failed, when it did

    def find(self, address: str) -> DataSet | None:
        for ds in self.data_sets:
            if ds.address == address:
                return ds
        return None


async def read_meter(port: str, options: ReadOptions | None = None) -> MeterReading:
    """Read the meter at the probe on ``port``. Raises ``OpticalError``."""
    opts = options or ReadOptions()
    t = opts.timings
    line = await OpticalLine.open(port, iec_settings(INITIAL_BAUD), timeout_s=t.open_s)
    async with line:
        try:
            return await _session(line, opts, switch=opts.baud_switch)
        except OpticalError as exc:
            lost = isinstance(exc, PortError)  # a pulled probe is not a speed problem
            if lost or not (exc.step == "readout" and opts.fallback_to_300 and _switched(line)):
                raise
            first = f"{exc.step}: {exc}"
            _log.info("readout after the baud switch failed (%s); retrying at 300 baud", first)
        await asyncio.sleep(t.retry_pause_s)
        reading = await _session(line, opts, switch=False)
        return MeterReading(
            reading.identification,
            reading.data_sets,
            reading.baudrate,
            baud_switch_failed=True,
            first_error=first,
        )


def _switched(line: OpticalLine) -> bool:
    return line.baudrate != INITIAL_BAUD


async def _session(line: OpticalLine, opts: ReadOptions, *, switch: bool) -> MeterReading:
    t = opts.timings
    if line.baudrate != INITIAL_BAUD:
        await line.set_baudrate(INITIAL_BAUD)
    if opts.wake_up:
        await _wake(line, t)
    line.discard_input()
    line.write(sign_on(opts.device_address))
    ident = await line.read_frame(
        _extract_identification,
        step="identification",
        first_byte_s=t.identification_s,
        inter_char_s=t.inter_char_s,
        total_s=t.identification_s,
    )
    _log.info(
        "meter identification manufacturer=%s baud=%s id=%r",
        ident.manufacturer,
        ident.baud_char,
        ident.identification,
    )
    rate = min(ident.max_baudrate, opts.max_baudrate) if switch else INITIAL_BAUD
    await asyncio.sleep(t.ack_delay_s)
    line.write(ack_option_select(baud_char_for(rate)))
    if rate != INITIAL_BAUD:
        # The meter switches 200 ms after our acknowledgement; we switch as soon as the
        # acknowledgement's last bit has left at 300 baud.
        await line.set_baudrate(rate)
    block = await line.read_frame(
        extract_data_message,
        step="readout",
        first_byte_s=t.readout_first_byte_s,
        inter_char_s=t.inter_char_s,
        total_s=t.readout_total_s,
    )
    return MeterReading(ident, parse_data_block(block), rate)


async def _wake(line: OpticalLine, t: ReaderTimings) -> None:
    # At 300 baud one character (start, 7 data, parity, stop) takes 10 bit times.
    count = max(1, round(t.wakeup_s * INITIAL_BAUD / 10))
    line.write(bytes([NUL]) * count)
    await line.drain(t.wakeup_s + 2.0)
    await asyncio.sleep(t.wakeup_pause_s)


def _extract_identification(buffer: bytearray) -> tuple[Identification, int] | None:
    # An optical head can hear its own light reflected off the meter's window: skip the echo
    # of our request (``/?...!`` CR LF), which no identification looks like.
    while buffer.startswith(b"/?") or buffer.startswith(b"\x00"):
        if buffer.startswith(b"\x00"):
            del buffer[:1]
            continue
        end = buffer.find(b"!\r\n")
        if end < 0:
            return None
        del buffer[: end + 3]
    start = buffer.find(b"/")
    if start < 0:
        if len(buffer) > MAX_IDENTIFICATION_LEN:
            raise IdentificationError(
                "identification", f"{len(buffer)} bytes arrived without an identification"
            )
        return None
    end = buffer.find(b"\r\n", start)
    if end < 0:
        if len(buffer) - start > MAX_IDENTIFICATION_LEN:
            raise IdentificationError(
                "identification",
                f"identification longer than {MAX_IDENTIFICATION_LEN} bytes: "
                f"{bytes(buffer[start : start + 40])!r}...",
            )
        return None
    return parse_identification(bytes(buffer[start : end + 2])), end + 2
