"""A serial port that stays open: bytes in and out, reopened by itself after an unplug.

The first arrow of the flow (serial bytes -> frames). It knows nothing of any
protocol: it opens a device path with serialx (one descriptor per port), moves the bytes
with ``serial_io.PortIO`` (no select(), so any descriptor number works), hands every
chunk it reads to a callback, and when the port vanishes (EOF, EIO, ENODEV, the
path disappearing, or any other error reading it) reports *disconnected*, then
reopens the same path with capped exponential backoff and reports *connected*
again. It never busy-loops and never dies on an unplug.

Every port is opened exclusively: an advisory lock (``flock``) on its descriptor, which
closing it releases. A second opener of the same port, in this process or another, gets
``PortBusy`` naming the port and, where the kernel lists it, the holder's PID; the link
counts and logs that as a failed open and keeps retrying with its backoff (the holder may
go away); a link made ``fail_fast_when_busy`` also ends its callers' wait at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from serialx.platforms.serial_linux import LinuxSerial

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.serial_io import OpenPort, PortIO

_log = logging.getLogger(__name__)

P = TypeVar("P", bound=OpenPort)


# How long ``stop`` waits for queued bytes to leave and the port to close.
_CLOSE_WAIT_S = 5.0


class LinkState(enum.Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class LinkDown(ConnectionError):
    """A write was attempted while the port is not open."""


class PortBusy(OSError):
    """The port is already open in another process (or another link) that holds its lock.

    ``holder`` says who, e.g. ``"pid 4242, gatewayd"``, when the kernel lists the lock.
    """

    def __init__(self, path: str, holder: str | None) -> None:
        self.path = path
        self.holder = holder
        who = f" ({holder})" if holder else ""
        super().__init__(errno.EBUSY, f"{path} is already open in another process{who}")

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """Line settings; the defaults are the LSP's (115200 8N1, no flow control)."""

    baudrate: int = 115200
    bytesize: int = 8
    parity: str = "N"  # N, E or O
    stopbits: float = 1


@dataclass
class LinkCounters:
    """Readable by metrics: cumulative since the link was created."""

    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0  # failed opens and unexpected losses of the port
    reconnects: int = 0  # successful reopens after a loss
    connected: bool = False


class SerialLink:
    """Keeps ``path`` open; see the module docstring.

    ``on_data`` gets every chunk read; ``on_state`` gets every change of state.
    Both are called from the event loop and must not block; an exception they
    raise is logged and does not reach the transport.
    """

    def __init__(
        self,
        path: str,
        *,
        on_data: Callable[[bytes], None],
        on_state: Callable[[LinkState], None] | None = None,
        settings: SerialSettings | None = None,
        backoff: BackoffSettings | None = None,
        rng: random.Random | None = None,
        name: str | None = None,
        fail_fast_when_busy: bool = False,
    ) -> None:
        self.path = path
        self.name = name or path
        self.settings = settings or SerialSettings()
        self.backoff = backoff or BackoffSettings()
        self.counters = LinkCounters()
        self._on_data = on_data
        self._on_state = on_state
        self._rng = rng or random.Random()
        self._port: PortIO | None = None
        self._lost = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._ever_connected = False
        self._fail_fast_when_busy = fail_fast_when_busy
        self._attempted = asyncio.Event()
        self.last_error: str | None = None
        # Set while the last open attempt found the port held by someone else.
        self.busy: PortBusy | None = None

    @property
    def connected(self) -> bool:
        return self._port is not None

    async def start(self) -> None:
        """Start keeping the port open (returns at once; see ``wait_connected``)."""
        if self._runner is None:
            self._stopping = False
            self._runner = asyncio.create_task(self._run(), name=f"serial-link {self.name}")

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until the port is open; False when ``timeout_s`` passed first.

        With ``fail_fast_when_busy``, also False as soon as an open attempt finds the port
        held by another process (``busy`` says by whom): a command line tool beside a running
        daemon says so at once instead of waiting out its timeout.
        """
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
        # cancellation that arrives as the wait completes, and a job stopped by a
        # DCC notice must really stop.
        try:
            async with asyncio.timeout(timeout_s):
                if not self._fail_fast_when_busy:
                    await self._connected_event.wait()
                    return True
                while not self._connected_event.is_set():
                    if self.busy is not None:
                        return False
                    self._attempted.clear()
                    await self._attempted.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Close the port and stop reopening it; once it returns, the port is free for others.

        Bytes still queued get ``_CLOSE_WAIT_S`` to leave; a port that takes none is left to
        close in the background, as before.
        """
        self._stopping = True
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        port = self._close_port()
        if port is not None:
            # The lock goes with the descriptor: a `gatewayd probe` run right after the
            # daemon stopped, or the next link in a test, must find the port free.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_WAIT_S):
                    await port.wait_closed()

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the port; raises ``LinkDown`` when it is not open."""
        port = self._port
        if port is None or port.is_closing():
            raise LinkDown(f"serial port {self.name} is not connected")
        port.write(data)
        self.counters.bytes_out += len(data)

    # --- internals -------------------------------------------------------------

    async def _run(self) -> None:
        delays = self.backoff.start(self._rng)
        while not self._stopping:
            try:
                await self._open()
            except Exception as exc:
                # Whatever the failure (an OSError, serialx's SerialException, a setting the
                # port refuses, another process holding the port), it is a failed open:
                # counted, logged once, tried again later.
                self.counters.errors += 1
                self.busy = exc if isinstance(exc, PortBusy) else None
                self._note_error(str(exc) if self.busy else f"cannot open {self.path}: {exc}")
                self._attempted.set()
                await asyncio.sleep(delays.next_delay())
                continue
            self._attempted.set()
            delays.reset()
            await self._lost.wait()
            if self._stopping:
                return
            # A quick pause before reopening: a vanishing port often flaps
            # (USB re-enumeration) and an instant reopen only finds it half there.
            await asyncio.sleep(delays.next_delay())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        opened = await open_off_loop(open_port, self.path, self.settings)
        port: PortIO | None = None

        def on_lost(exc: BaseException | None) -> None:
            self._on_lost(port, exc)

        try:
            port = PortIO(opened, loop, on_data=self._on_bytes, on_lost=on_lost)
        except BaseException:
            opened.close()
            raise
        self._lost.clear()
        self._port = port
        if self._ever_connected:
            self.counters.reconnects += 1
        self._ever_connected = True
        self.counters.connected = True
        self._connected_event.set()
        self.last_error = None
        self.busy = None
        _log.info("serial port connected link=%s", self.name)
        self._notify(LinkState.CONNECTED)

    def _on_bytes(self, data: bytes) -> None:
        self.counters.bytes_in += len(data)
        try:
            self._on_data(data)
        except Exception:
            _log.exception("serial data handler failed link=%s", self.name)

    def _on_lost(self, port: PortIO | None, exc: BaseException | None) -> None:
        if port is None or port is not self._port:
            return
        self._port = None
        self.counters.connected = False
        self._connected_event.clear()
        if not self._stopping:
            self.counters.errors += 1
            self._note_error(f"lost {self.path}: {exc or 'closed'}")
        self._lost.set()
        self._notify(LinkState.DISCONNECTED)

    def _close_port(self) -> PortIO | None:
        port = self._port
        # The port reports its end later; report the state now.
        if port is not None:
            port.close()
            self._port = None
            self.counters.connected = False
            self._connected_event.clear()
            self._notify(LinkState.DISCONNECTED)
        return port

    def _note_error(self, message: str) -> None:
        # Log a failing port once per outage, not once per reopen attempt.
        if message != self.last_error:
            what = "held by another process" if self.busy is not None else "problem"
            _log.warning("serial port %s link=%s error=%r", what, self.name, message)
        self.last_error = message

    def _notify(self, state: LinkState) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(state)
        except Exception:
            _log.exception("serial state handler failed link=%s", self.name)


async def open_off_loop(
    opener: Callable[[str, SerialSettings], P], path: str, s: SerialSettings
) -> P:
    """``opener(path, s)`` in a worker thread: opening can block on a real port (a USB
    device settling). When the caller is cancelled meanwhile (a stop, a timeout), the
    port the thread still opens is closed, not leaked."""
    opening = asyncio.get_running_loop().run_in_executor(None, opener, path, s)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_if_opened)
        raise


def _close_if_opened(opening: asyncio.Future[P]) -> None:
    if opening.cancelled() or opening.exception() is not None:
        return
    try:
        opening.result().close()
    except Exception:
        _log.debug("closing a port opened too late failed", exc_info=True)


# As serialx's own asyncio transport opens a port: read-write, not our controlling tty,
# non-blocking (the event loop waits for it, not a thread).
_OPEN_FLAGS = os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK


def open_unconfigured(path: str) -> LinuxSerial:
    """Open and lock ``path``: one descriptor, handed to serialx's port class, not yet configured.

    serialx's own ``open()`` would sleep 10 ms between opening and configuring (a
    workaround for some drivers' input flush). pyserial, used before, never waited, and the
    links resync on stale input; the wait would make each port's first *connected* come
    after the kit's birth on MQTT (every hub's availability briefly offline at each start)
    and hold a worker thread 10 ms per port (10 s for 1,024 hubs). So the descriptor is
    opened here as serialx's asyncio transport opens it, and serialx configures it.

    The port is exclusive: raises ``PortBusy`` when another process (or another link of
    this one) has it open, before anything is configured, so the holder's line is left as
    it is.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _lock(fd, path)
        # Locked here already, so serialx's ``exclusive`` only records it.
        return LinuxSerial(path, fileno=fd, exclusive=True)
    except BaseException:
        os.close(fd)
        raise


def _lock(fd: int, path: str) -> None:
    """Take the port's advisory lock, as serialx's and pyserial's ``exclusive=True`` do.

    The same ``flock``, so a port opened exclusively by either of them is busy for us too
    and the other way round (serialx's own is private, and reached only through its
    ``open()``, which waits). Two ports that are each other's symlink lock the same device.
    Closing the descriptor releases the lock; no stale lock outlives a crash. Not TIOCEXCL:
    it does not stop root, and it stays on the tty until every descriptor of it is closed,
    so when another holder (a pty's simulator) kept one, a non-root daemon could not
    reopen its own port.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise PortBusy(path, _lock_holder(fd)) from None


_PROC_LOCKS = "/proc/locks"


def _lock_holder(fd: int) -> str | None:
    """Who holds the ``flock`` on ``fd``'s device: ``"pid N, name"``, or None if not listed.

    A best effort for the message: the PID is the one the kernel lists for the lock (0 or
    missing in another PID namespace, then left out).
    """
    try:
        st = os.fstat(fd)
        with open(_PROC_LOCKS, encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    # "1: FLOCK  ADVISORY  WRITE 4242 00:1a:11 0 EOF": the device in hex, the inode in
    # decimal. A waiter's line has "->" after the number, so it never matches.
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != device:
            continue
        try:
            pid = int(fields[4])
        except ValueError:
            return None
        if pid <= 0:
            return None
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                name = f.read().strip()
        except OSError:
            return f"pid {pid}"
        return f"pid {pid}, {name}" if name else f"pid {pid}"
    return None


def configure(port: LinuxSerial, s: SerialSettings) -> None:
    """Set the whole line on an open port (raw, ``s``'s speed and framing, no flow control).

    serialx writes the whole termios struct, raises DTR and RTS, asks for low latency where
    the driver has it, then flushes both queues, as pyserial's open did its input.
    """
    port.reconfigure_port(
        baudrate=s.baudrate,
        byte_size=s.bytesize,
        parity=s.parity,
        stopbits=s.stopbits,
        xonxoff=False,
        rtscts=False,
        dsrdtr=False,
    )


def open_port(path: str, s: SerialSettings) -> LinuxSerial:
    """Open and configure ``path`` (blocking: call it off the loop).

    The bytes then go through ``PortIO``, never through serialx's own ``read``, which
    waits in select().
    """
    port = open_unconfigured(path)
    try:
        configure(port, s)
    except BaseException:
        port.close()
        raise
    return port
