"""Telling a session takeover from a broker that is down.

A broker allows one connection per client id: when a second kit connects with the
same id, it closes the first. Under MQTT 5 it may say so (DISCONNECT with reason
code 0x8E, "Session taken over"; mosquitto 2.0 does not); otherwise it just closes
the connection, and the two kits then push each other off in turn. So: a 0x8E is a takeover at once;
without one, connections that the broker accepted and then closed, three times
within a minute, are reported as a suspected takeover. Pure bookkeeping: the
caller passes the time in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 reason code
SUSPECT_DROPS = 3
SUSPECT_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Takeover:
    certain: bool  # the broker said so (MQTT 5); otherwise inferred from repeated drops
    drops_in_window: int


class TakeoverWatch:
    def __init__(self, drops: int = SUSPECT_DROPS, window_s: float = SUSPECT_WINDOW_S) -> None:
        self._limit = drops
        self._window_s = window_s
        self._drops: deque[float] = deque()

    def dropped(self, now: float, reason_code: int | None) -> Takeover | None:
        """An accepted connection was closed by the broker's side: was it a takeover?"""
        self._drops.append(now)
        while self._drops and now - self._drops[0] > self._window_s:
            self._drops.popleft()
        if reason_code == SESSION_TAKEN_OVER:
            return Takeover(certain=True, drops_in_window=len(self._drops))
        if len(self._drops) >= self._limit:
            return Takeover(certain=False, drops_in_window=len(self._drops))
        return None


def reason_code_of(exc: BaseException) -> int | None:
    """The MQTT reason code carried by an aiomqtt error or the error it came from, if any."""
    seen: BaseException | None = exc
    for _ in range(3):  # the error itself, its cause, and that one's cause
        if seen is None:
            return None
        rc = getattr(seen, "rc", None)
        value = getattr(rc, "value", rc)
        if isinstance(value, int) and value:
            return value
        seen = seen.__cause__
    return None
