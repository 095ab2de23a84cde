"""The optical probe's serial line: 7E1 at a chosen speed, bounded receive buffer, timed reads.

The bytes layer of the reader. It opens the port once for one read (no reopen loop: a read is
a short session and a lost probe ends it), with the line settings given as the serial link's
``SerialSettings``, the same way as the serial link: serialx opens and configures the port (one
descriptor, locked: a probe another process has open is a ``PortError`` saying so) and changes
its speed mid-session (``reconfigure_port``); the bytes move through ``serial_io.PortIO``, so
no select() is on this path either and any error ends the session once.

IEC 62056-21 needs 7 data bits, even parity, 1 stop bit. A pseudo-terminal cannot carry
parity and refuses (EINVAL) a 7E1 setting that leaves its speed as it was; a real port never
does. So every setting that fails with EINVAL is checked against the line's actual speed
(``termios.tcgetattr``): when the speed is the one asked for, the failure is tolerated.

A speed change waits until what was written has left the wire. ``tcdrain`` alone does not
promise that: a USB optical head (and a pseudo-terminal) reports drained once it holds the
bytes, while at 300 baud the acknowledgement still takes 200 ms to shift out. So the line
keeps when its last byte will have left at the current speed, and a switch waits for that.
serialx flushes both queues after each change of speed: by then nothing of ours is left to
send, and the meter answers at the new speed only after its reaction time (200 ms or more).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import termios
from collections.abc import Callable
from typing import TypeVar

from serialx import Parity
from serialx.platforms.serial_linux import LinuxSerial

from gatewayd_drivers.iec62056.errors import (
    BaudSwitchError,
    OpticalTimeout,
    PortError,
    ReadoutError,
)
from gatewayd_drivers.serial_io import PortIO
from gatewayd_drivers.serial_link import (
    PortBusy,
    SerialSettings,
    configure,
    open_off_loop,
    open_unconfigured,
)

__all__ = ["MAX_BUFFER", "OpticalLine", "iec_settings"]

_log = logging.getLogger(__name__)

MAX_BUFFER = 80 * 1024
T = TypeVar("T")


def iec_settings(baudrate: int = 300) -> SerialSettings:
    """7E1 at ``baudrate``, the optical port's line."""
    return SerialSettings(baudrate=baudrate, bytesize=7, parity="E", stopbits=1)


def _termios_speed(baudrate: int) -> int | None:
    value = getattr(termios, f"B{baudrate}", None)
    return value if isinstance(value, int) else None


def _is_einval(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.EINVAL
    if isinstance(exc, termios.error):
        return bool(exc.args) and exc.args[0] == errno.EINVAL
    return False


class OpticalLine:
    """One open session on the probe's port. Use ``async with OpticalLine.open(...)``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._io: PortIO | None = None
        self._serial: LinuxSerial | None = None
        self._buffer = bytearray()
        self._arrived = asyncio.Event()
        self._lost: str | None = None
        self._overflow = False
        self.bytes_in = 0
        self.bytes_out = 0
        self._sent_by = 0.0  # loop time the last byte written will have left the wire

    # --- opening and closing ------------------------------------------------------

    @classmethod
    async def open(cls, path: str, settings: SerialSettings, *, timeout_s: float) -> OpticalLine:
        """Open ``path`` with ``settings``; raises ``PortError``."""
        line = cls(path)
        try:
            async with asyncio.timeout(timeout_s):
                await line._connect(settings)
        except TimeoutError:
            raise PortError("open", f"opening {path} took longer than {timeout_s:g} s") from None
        return line

    async def _connect(self, s: SerialSettings) -> None:
        path = self.path
        try:
            ser = await open_off_loop(_open_line, path, s)
        except BaudSwitchError as exc:
            raise PortError("open", f"cannot set {path} to 7E1: {exc}") from None
        except Exception as exc:
            raise PortError("open", _open_failure(path, exc)) from None
        self._serial = ser
        self._io = PortIO(
            ser, asyncio.get_running_loop(), on_data=self._on_bytes, on_lost=self._on_lost
        )
        # The port's input was flushed as it was set up; whatever came meanwhile is noise.
        self._buffer.clear()

    async def close(self) -> None:
        io = self._io
        if io is None:
            return
        io.close()
        # The descriptor is closed before the caller moves on (a next read reopens the port).
        await io.wait_closed()

    async def __aenter__(self) -> OpticalLine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- line settings ------------------------------------------------------------

    @property
    def serial(self) -> LinuxSerial:
        if self._serial is None:
            raise PortError("open", f"{self.path} is not open")
        return self._serial

    @property
    def baudrate(self) -> int:
        return int(self.serial.baudrate)

    async def set_baudrate(self, baudrate: int, *, drain_timeout_s: float = 2.0) -> None:
        """Change speed once what was written has left the port and the wire."""
        await self.drain(drain_timeout_s)
        on_the_wire = self._sent_by - asyncio.get_running_loop().time()
        if on_the_wire > 0:
            await asyncio.sleep(on_the_wire)
        ser = self._open_serial("baud switch")
        # A few ioctls, but on a USB head each is a round trip to the device: off the loop.
        await asyncio.to_thread(_set_speed, ser, baudrate)
        _log.debug("optical line %s now at %d baud", self.path, baudrate)

    async def drain(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                # PortIO writes eagerly; a short message is rarely left in its buffer, and
                # it offers no event for when that buffer empties.
                while self._io is not None and self._io.buffered:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                ser = self._open_serial("drain")
                await asyncio.to_thread(termios.tcdrain, ser.fileno())
        except TimeoutError:
            raise PortError("drain", f"bytes to {self.path} did not leave the port") from None
        except (termios.error, OSError) as exc:
            raise PortError("drain", f"cannot drain {self.path}: {exc}") from None

    def _open_serial(self, step: str) -> LinuxSerial:
        """The port, while it is open; a lost or closed one is a ``PortError`` of ``step``."""
        ser = self._serial
        if self._lost is not None or ser is None or not ser.is_open:
            raise PortError(step, f"the port {self.path} is closed: {self._lost or 'closed'}")
        return ser

    # --- bytes --------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        io = self._io
        if self._lost is not None or io is None or io.is_closing():
            raise PortError("write", f"the port {self.path} is closed: {self._lost or 'closed'}")
        io.write(data)
        self.bytes_out += len(data)
        now = asyncio.get_running_loop().time()
        self._sent_by = max(self._sent_by, now) + len(data) * self._char_s()

    def _char_s(self) -> float:
        """Seconds one character takes on the wire: start bit, data, parity, stop bits."""
        ser = self.serial
        parity = 0 if ser.parity == Parity.NONE else 1
        return (1 + ser.byte_size + parity + float(ser.stopbits)) / ser.baudrate

    def discard_input(self) -> None:
        self._buffer.clear()
        self._overflow = False

    async def read_frame(
        self,
        extract: Callable[[bytearray], tuple[T, int] | None],
        *,
        step: str,
        first_byte_s: float,
        inter_char_s: float,
        total_s: float,
    ) -> T:
        """Wait until ``extract`` finds a frame in the buffer; it is removed from the buffer.

        ``extract`` returns ``(frame, consumed)`` or ``None`` for more bytes, and raises for a
        bad frame. Timeouts (IEC 62056-21's reaction and inter-character times) raise
        ``OpticalTimeout`` naming ``step``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + total_s
        got_any = bool(self._buffer)
        while True:
            if self._overflow:
                raise ReadoutError(step, f"more than {MAX_BUFFER} bytes arrived unread")
            found = extract(self._buffer)
            if found is not None:
                frame, used = found
                del self._buffer[:used]
                return frame
            if self._lost is not None:
                raise PortError(step, f"lost the port {self.path}: {self._lost}")
            wait = min(inter_char_s if got_any else first_byte_s, deadline - loop.time())
            if wait > 0:
                self._arrived.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._arrived.wait()
                except TimeoutError:
                    pass
                else:
                    got_any = True
                    continue
            if not got_any:
                raise OpticalTimeout(
                    step, f"no answer from the meter within {first_byte_s:g} s ({step})"
                )
            if loop.time() >= deadline:
                raise OpticalTimeout(step, f"the {step} did not complete within {total_s:g} s")
            raise OpticalTimeout(
                step, f"the meter stopped sending for {inter_char_s:g} s during the {step}"
            )

    def _on_bytes(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if len(self._buffer) + len(data) > MAX_BUFFER:
            self._overflow = True
        else:
            # A 7-bit line: the eighth bit a port without parity stripping passes is not data.
            self._buffer.extend(bytes(b & 0x7F for b in data))
        self._arrived.set()

    def _on_lost(self, exc: BaseException | None) -> None:
        self._lost = str(exc) if exc is not None else "closed"
        self._arrived.set()


def _open_line(path: str, s: SerialSettings) -> LinuxSerial:
    """Open ``path`` and set its line (blocking); a pty's refusal at its speed is tolerated."""
    ser = open_unconfigured(path)
    try:
        _tolerating_pty(ser, s.baudrate, "7E1", lambda: configure(ser, s))
        # serialx flushed the input if the port took the setting, not if it refused it.
        ser.reset_read_buffer()
    except BaseException:
        ser.close()
        raise
    return ser


def _set_speed(ser: LinuxSerial, baudrate: int) -> None:
    _tolerating_pty(
        ser, baudrate, f"{baudrate} baud", lambda: ser.reconfigure_port(baudrate=baudrate)
    )


def _tolerating_pty(ser: LinuxSerial, baudrate: int, what: str, change: Callable[[], None]) -> None:
    """Run ``change``; tolerate EINVAL when the line already runs at ``baudrate``.

    serialx records the settings asked for even when the port refuses them, so the line
    reports 7E1 at ``baudrate``, as a real port would be set.
    """
    try:
        change()
    except Exception as exc:
        if not (_is_einval(exc) or _is_einval(exc.__context__ or exc)):
            raise BaudSwitchError("baud switch", f"cannot set {what}: {exc}") from None
        actual = _line_speed(ser)
        if actual is None or actual != _termios_speed(baudrate):
            raise BaudSwitchError(
                "baud switch", f"the port refused {what} and is not at {baudrate} baud"
            ) from None
        # A pty that cannot carry parity, already at the right speed: nothing to change.
        _log.debug("port refused a setting at its current speed, tolerated (pty) setting=%s", what)


def _open_failure(path: str, exc: BaseException) -> str:
    if isinstance(exc, PortBusy):
        return str(exc)  # names the port and who holds it
    if (isinstance(exc, OSError) and exc.errno == errno.ENOENT) or "No such file" in str(exc):
        return f"no serial port at {path} (is the optical probe plugged in?)"
    return f"cannot open {path}: {exc}"


def _line_speed(ser: LinuxSerial) -> int | None:
    if not ser.is_open:
        return None
    with contextlib.suppress(termios.error, OSError):
        attrs = termios.tcgetattr(ser.fileno())
        return int(attrs[5])
    return None
