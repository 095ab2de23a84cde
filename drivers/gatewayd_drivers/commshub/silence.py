"""When a hub that answered has gone silent (domain rule "a silent hub").

Silent means: no valid frame from the hub for 10 s while a request is
outstanding, or three requests in a row that timed out after all their resends.
One timeout alone is not silence: line noise can cause it, and the caller
retries. Any valid frame ends the quiet period; an answered request ends the
run of timeouts. Pure bookkeeping: the caller passes the time in, so the rule
is tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

QUIET_S = 10.0
TIMEOUTS_IN_A_ROW = 3


@dataclass(frozen=True, slots=True)
class Silence:
    """Why the hub counts as silent, in words fit for a job's evidence."""

    reason: str
    quiet_s: float  # seconds since the hub's last valid frame, when it was judged silent
    timeouts_in_a_row: int


class SilenceWatch:
    def __init__(self, quiet_s: float = QUIET_S, timeouts_in_a_row: int = TIMEOUTS_IN_A_ROW):
        self.quiet_limit_s = quiet_s
        self.timeout_limit = timeouts_in_a_row
        self._last_frame_at: float | None = None
        # Since when a request has waited with no valid frame from the hub; None while it talks.
        self._unanswered_since: float | None = None
        self._timeouts = 0

    @property
    def timeouts_in_a_row(self) -> int:
        return self._timeouts

    def request_sent(self, now: float) -> None:
        if self._unanswered_since is None:
            self._unanswered_since = now

    def frame_received(self, now: float) -> None:
        self._last_frame_at = now
        self._unanswered_since = None

    def answered(self) -> None:
        self._timeouts = 0

    def timed_out(self) -> None:
        self._timeouts += 1

    def quiet_deadline(self) -> float | None:
        """When the quiet rule will call the hub silent if nothing arrives (None: not waiting)."""
        if self._unanswered_since is None:
            return None
        return self._unanswered_since + self.quiet_limit_s

    def check(self, now: float, *, outstanding: bool) -> Silence | None:
        """The hub's silence now, or None. ``outstanding``: a request is waiting for an answer."""
        quiet = self._quiet_for(now)
        if self._timeouts >= self.timeout_limit:
            return Silence(
                f"{self._timeouts} requests in a row went unanswered after all their resends",
                quiet,
                self._timeouts,
            )
        if outstanding and self._unanswered_since is not None:
            waiting = now - self._unanswered_since
            if waiting >= self.quiet_limit_s:
                return Silence(
                    f"no valid frame from the hub for {waiting:.1f} s while a request waited",
                    quiet,
                    self._timeouts,
                )
        return None

    def _quiet_for(self, now: float) -> float:
        since = self._last_frame_at if self._last_frame_at is not None else self._unanswered_since
        return round(now - since, 3) if since is not None else 0.0
