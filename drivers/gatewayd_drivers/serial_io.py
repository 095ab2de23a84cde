"""Bytes in and out of one open serial port, straight on its descriptor, never with select().

A serial library opens and configures the port (termios); the bytes move here. The
synchronous ``read`` and ``write`` of pyserial and of serialx both wait in
``select.select()``, which raises ``ValueError`` once a descriptor passes 1023: a daemon
with hundreds of ports would lose them all. Here the event loop watches the non-blocking
descriptor (``add_reader``/``add_writer``, epoll on Linux) and the bytes move with
``os.read``/``os.write``.

Any error on the port, of whatever type, ends it: the reader and writer are removed, the
port is closed, and ``on_lost`` hears the reason once. The port is never left registered
to fail again on the next turn of the loop, and nothing reaches the loop's exception
handler. (serialx's own asyncio transport catches only ``OSError`` in its reader, and hands
every error but EIO and ENXIO to the loop's exception handler as well: that is why the
bytes do not go through it.)
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from typing import Protocol

_log = logging.getLogger(__name__)

_MAX_READ = 65536
# Not errors: the descriptor is non-blocking and a signal can interrupt a call.
_RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.EINPROGRESS})
# A read of nothing: the device is gone (a pty whose other end closed, a hung-up tty). The
# words are pyserial's, kept since they reach hub availability messages (docs/mqtt.md).
_EOF_REASON = (
    "device reports readiness to read but returned no data "
    "(device disconnected or multiple access on port?)"
)


class PortLost(OSError):
    """Why an open port ended: the device vanished, or reading or writing it failed."""


class OpenPort(Protocol):
    """What ``PortIO`` needs of an opened port: its descriptor, a drain and a close."""

    def fileno(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _RETRY_ERRNOS


class PortIO:
    """An open port watched by ``loop``; ``on_lost`` is called exactly once.

    ``on_data`` gets every chunk read. ``on_lost`` gets ``None`` after ``close``,
    or a ``PortLost`` saying what ended the port; it is always called from a later
    turn of the loop, never from inside ``write`` or ``close``, so a caller's state
    is never changed under it.
    """

    def __init__(
        self,
        port: OpenPort,
        loop: asyncio.AbstractEventLoop,
        *,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        self._port = port
        self._loop = loop
        self._fd = port.fileno()
        self._on_data = on_data
        self._on_lost = on_lost
        self._pending = bytearray()
        self._writing = False
        self._closing = False
        self._ended = False
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._read_ready)

    def is_closing(self) -> bool:
        return self._closing

    @property
    def buffered(self) -> int:
        """Bytes written but not yet taken by the port."""
        return len(self._pending)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` now, or as soon as the port takes it; ignored once closing."""
        if self._closing:
            return
        if self._pending:
            self._pending += data
            return
        try:
            sent = os.write(self._fd, data)
        except Exception as exc:
            if not _retryable(exc):
                self._end(exc, "write")
                return
            sent = 0
        if sent < len(data):
            self._pending += memoryview(data)[sent:]
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)

    def close(self) -> None:
        """Stop reading, send what is still queued, then close the port."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._pending:
            self._finish(None, flush=True)

    async def wait_closed(self) -> None:
        """Return once the port is closed and ``on_lost`` has been called."""
        await self._closed.wait()

    # --- internals -------------------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fd, _MAX_READ)
        except Exception as exc:
            if not _retryable(exc):
                self._end(exc, "read")
            return
        if not data:
            self._end(PortLost(_EOF_REASON), "read")
            return
        self._on_data(data)

    def _write_ready(self) -> None:
        try:
            sent = os.write(self._fd, self._pending)
        except Exception as exc:
            if not _retryable(exc):
                self._end(exc, "write")
            return
        del self._pending[:sent]
        if not self._pending:
            self._stop_writing()
            if self._closing:
                self._finish(None, flush=True)

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)

    def _end(self, exc: BaseException, doing: str) -> None:
        # Whatever failed, the port is done: nothing stays registered to fail again.
        if not isinstance(exc, PortLost):
            # One type for every reason, whose words say what was being done.
            wrapped = PortLost(f"{doing} failed: {exc}")
            wrapped.__cause__ = exc
            exc = wrapped
        self._closing = True
        self._loop.remove_reader(self._fd)
        self._pending.clear()
        self._finish(exc, flush=False)

    def _finish(self, exc: BaseException | None, *, flush: bool) -> None:
        if self._ended:
            return
        self._ended = True
        self._stop_writing()
        # Draining and closing a real port can block for a moment: off the loop.
        self._task = self._loop.create_task(self._close_port(exc, flush=flush))

    async def _close_port(self, exc: BaseException | None, *, flush: bool) -> None:
        if flush:
            try:
                await self._loop.run_in_executor(None, self._port.flush)
            except Exception:
                _log.debug("serial port flush failed", exc_info=True)
        try:
            await self._loop.run_in_executor(None, self._port.close)
        except Exception:
            _log.debug("serial port close failed", exc_info=True)
        try:
            self._on_lost(exc)
        finally:
            self._closed.set()
