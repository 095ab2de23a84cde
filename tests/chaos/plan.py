"""How big each chaos run is: the long variant the issue asks for, and a short one for CI.

Every run is bounded twice: by its counts here, and by ``budget_s``, after which it stops
sending jobs and settles whatever is under way.
"""

from __future__ import annotations

from dataclasses import dataclass

HUBS = 8
BER = 1e-3  # line noise: each bit, either way, flipped with this probability
SEED = 12  # the runs' random choices; the figures in docs/reliability.md are this seed's


@dataclass(frozen=True)
class Plan:
    variant: str
    kill_jobs: int  # jobs of the kills run (at least)
    kills: int  # SIGKILLs of the daemon, and as many of the broker
    pulls: int  # cable pulls of the pulls run
    noise_jobs: int
    disk_jobs_before: int  # jobs on a calm disk before it is filled
    disk_full_s: float  # how long the disk stays full
    silences: int  # silences of the silent run
    silent_jobs: int  # at most: the jobs stop once the silences are made
    budget_s: float  # per run: no new job after this
    wait_s: float  # the longest one job waits to be taken, or for its result
    settle_s: float  # the longest the end of a run waits for results still queued


LONG = Plan(
    variant="long",
    kill_jobs=200,
    kills=12,
    pulls=100,
    noise_jobs=100,
    disk_jobs_before=16,
    disk_full_s=20.0,
    silences=12,
    silent_jobs=800,
    budget_s=600.0,
    wait_s=60.0,
    settle_s=60.0,
)

SHORT = Plan(
    variant="short",
    kill_jobs=24,
    kills=3,
    pulls=10,
    noise_jobs=16,
    disk_jobs_before=8,
    disk_full_s=4.0,
    silences=3,
    silent_jobs=300,
    budget_s=100.0,
    wait_s=15.0,
    settle_s=15.0,
)

PLANS = {plan.variant: plan for plan in (LONG, SHORT)}
