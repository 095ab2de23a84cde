"""Which verdicts a job may end with, given what the chaos did to it while it ran.

A job the chaos left alone must reach its site's verdict. A job cut short by a kill of
the daemon, by a cable pull (one that outlasts a stage deadline ends the stage with the
link down) or by a short silence of its hub may also end ``failed``, never with another
abort or a success. A hub that stays silent past the domain's 10 s ("no valid frame for
10 s while a request is outstanding") makes the job ``failed``, and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tests.chaos.dispatch import JobRecord
from tests.chaos.hubs import Slot
from tests.chaos.kit import SPEED

SILENT_HUB_S = 10.0  # the domain rule's silence, in real seconds (protocol time)
# A result that arrives this soon after a silence began was decided on what the hub had
# already said. The kit cannot call a hub silent sooner than ~9 s (three 3 s timeouts) or
# 10 s (quiet with a request waiting), while the kit-to-back-office path takes milliseconds
# on an idle machine and well under a second on a loaded one: 3 s tells the two apart.
VERDICT_IN_FLIGHT_S = 3.0


@dataclass(frozen=True)
class Allowed:
    verdicts: frozenset[str]
    why: tuple[str, ...]  # what cut the job short, if anything


def allowed_verdicts(record: JobRecord, slot: Slot, kills: list[float], end: float) -> Allowed:
    """What ``record`` may end with; ``end`` closes the window of a job with no result."""
    start = record.first_sent
    stop = record.result_at if record.result_at is not None else end
    expected = str(record.site.expected)
    why: list[str] = []
    if any(start <= k <= stop for k in kills):
        why.append("kill")
    for sim, gone in slot.sims:
        if any(at <= stop and at + out >= start for at, out in sim.cable_pulls):
            why.append("pull")
        for at, site_s in sim.silences:
            real_s = None if site_s is None else site_s / SPEED
            until = min(at + (real_s if real_s is not None else math.inf), gone or math.inf)
            if at > stop - VERDICT_IN_FLIGHT_S or until < start:
                continue
            why.append("silent" if real_s is None or real_s >= SILENT_HUB_S else "short silence")
    if "silent" in why:
        return Allowed(frozenset({"failed"}), tuple(why))
    if why:
        return Allowed(frozenset({expected, "failed"}), tuple(why))
    return Allowed(frozenset({expected}), ())


def verdict_of(result: dict[str, object]) -> str:
    """A result document's verdict in the form ``Expected`` prints: outcome, abort code."""
    outcome = str(result.get("outcome"))
    abort = result.get("abort")
    if isinstance(abort, dict) and abort.get("code"):
        return f"{outcome} {abort['code']}"
    return outcome
