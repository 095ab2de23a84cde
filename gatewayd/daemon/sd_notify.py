"""systemd's notify protocol: READY, STATUS, WATCHDOG, RELOADING and STOPPING.

Lifecycle side of the daemon. The protocol is one datagram per message to the socket
named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); without
that variable, as when run by hand or in tests, every call does nothing. The PyPI
packages for this are unmaintained or need libsystemd, so it is a few lines here.

The watchdog is kicked from a task on the daemon's event loop, at half of
``$WATCHDOG_USEC``: if the loop hangs, the kicks stop and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "watchdog_interval_s"]

_log = logging.getLogger(__name__)

RETRY_EVERY_S = 0.05
RETRY_FOR_S = 2.0
RETRIES = int(RETRY_FOR_S / RETRY_EVERY_S)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog kicks (half of ``$WATCHDOG_USEC``), or None when off.

    ``$WATCHDOG_PID``, when set, must be this process: a child that inherited the
    environment must not kick on its parent's behalf.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        _log.warning("ignoring WATCHDOG_USEC, not a number of microseconds value=%r", usec)
        return None
    return value / 2_000_000 if value > 0 else None


class Notifier:
    """Sends notify messages to systemd; a no-op without ``$NOTIFY_SOCKET``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_s = watchdog_interval_s(env)
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="idle")``; True if sent.

        Never blocks the event loop: a datagram socket whose reader is behind (the kernel
        queues only ``net.unix.max_dgram_qlen`` of them, often 10) refuses at once instead,
        and the message is tried again shortly, up to ``RETRY_FOR_S``. A missed watchdog
        kick is not retried: the next one is due soon anyway.
        """
        if self._address is None:
            return False
        message = "\n".join(f"{k}={_one_line(str(v))}" for k, v in fields.items())
        return self._send(message.encode(), retries=0 if "WATCHDOG" in fields else RETRIES)

    def _send(self, data: bytes, retries: int) -> bool:
        assert self._address is not None
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(data, self._address)
        except BlockingIOError:
            if retries > 0 and _loop_running():
                asyncio.get_running_loop().call_later(RETRY_EVERY_S, self._send, data, retries - 1)
            else:
                _log.warning("sd_notify dropped a message: systemd is not reading")
            return False
        except OSError as exc:
            # systemd going away must never stop the daemon; it is only told less.
            _log.warning("sd_notify failed error=%r", exc.strerror or str(exc))
            return False
        return True

    def ready(self, status: str) -> None:
        self.send(READY=1, STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 order the reload; older ones ignore it.
        self.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)

    def stopping(self, status: str) -> None:
        self.send(STOPPING=1, STATUS=status)

    def start_watchdog(self) -> None:
        """Kick the watchdog from the running loop, if systemd asked for one."""
        if self._watchdog_s is None or self._address is None or self._task is not None:
            return
        self._task = asyncio.create_task(self._kick(self._watchdog_s), name="sd watchdog")

    async def _kick(self, every_s: float) -> None:
        while True:
            self.send(WATCHDOG=1)
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    _log.warning("ignoring NOTIFY_SOCKET, neither a path nor an abstract name value=%r", value)
    return None


def _one_line(value: str) -> str:
    # A newline would start a new KEY=value assignment inside the datagram.
    return value.replace("\n", " ")
