"""A pseudo-terminal standing in for a USB serial port, with unplug and replug.

The simulator owns the master side; clients open the slave through a stable
symlink, the way installers open ``/dev/serial/by-id/...``. Unplugging closes
both ends and removes the link, so a client's read fails as with a pulled
cable; replugging makes a new pty and swaps the link to it atomically.
Generic: every device simulator (hub, ZNP radio, optical probe) reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)

_READ_SIZE = 4096


class PtyPort:
    """The device end of a serial line, reached by clients through ``link``.

    ``on_data`` is called on the event loop with every chunk the client writes.
    """

    def __init__(self, link: Path, on_data: Callable[[bytes], None]) -> None:
        self._link = link
        self._on_data = on_data
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._reading = False

    @property
    def link(self) -> Path:
        return self._link

    @property
    def path(self) -> str | None:
        """The pty's slave device (``/dev/pts/N``), ``None`` while unplugged."""
        return self._slave_path

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def line_attrs(self) -> list[Any] | None:
        """The line settings the client set (``termios.tcgetattr`` of the slave), or ``None``.

        A pty carries no baud rate, but it keeps the speed a client asks for: simulators read
        it here to tell whether the client switched speed as its protocol demands.
        """
        if self._slave is None:
            return None
        try:
            return termios.tcgetattr(self._slave)
        except termios.error:
            return None

    def open(self) -> None:
        """Create the pty and publish the link. Needs a running event loop."""
        if self.plugged:
            return
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            # Canonical mode would turn CR into LF and hold input until a newline.
            tty.setraw(slave)
            # A full slave input queue (nobody reading) must not block the loop.
            os.set_blocking(master, False)
            slave_path = os.ttyname(slave)
            self._publish_link(slave_path)
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._loop = loop
        # The slave fd stays open for the port's life: without it the master
        # reads EIO in a tight loop whenever no client has the port open.
        self._master, self._slave, self._slave_path = master, slave, slave_path
        loop.add_reader(master, self._on_readable)
        self._reading = True

    def write(self, data: bytes) -> bool:
        """Send bytes to the client; ``False`` when unplugged or the line dropped them."""
        if self._master is None or not data:
            return False
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            # Like a UART with nobody listening: the bytes are simply lost.
            return False
        except OSError as exc:
            _log.debug("pty write failed: %s", exc)
            return False
        return written == len(data)

    def unplug(self) -> None:
        """Close both ends and remove the link: the client's next read fails."""
        self._stop_reading()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._slave_path = None
        with contextlib.suppress(FileNotFoundError):
            self._link.unlink()

    def replug(self) -> None:
        """A new pty behind the same link path (the old one is unplugged first)."""
        self.unplug()
        self.open()

    def close(self) -> None:
        self.unplug()

    def _publish_link(self, target: str) -> None:
        self._link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._link.with_name(self._link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        # os.replace is atomic: a client never sees the path missing or half-made.
        os.replace(tmp, self._link)

    def _stop_reading(self) -> None:
        if self._reading and self._loop is not None and self._master is not None:
            self._loop.remove_reader(self._master)
        self._reading = False

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO once no slave fd is open: stop watching rather than spin.
            _log.warning("pty read failed (%s); no longer reading", exc)
            self._stop_reading()
            return
        if not data:
            self._stop_reading()
            return
        try:
            self._on_data(data)
        except Exception:
            # A handler's bug must not take the port's receive path down.
            _log.exception("pty data handler failed")
