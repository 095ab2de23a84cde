"""The descriptor budget: how many open files the daemon needs, and raising its limit to fit.

Each hub port costs ``PER_HUB`` descriptors: the port itself and nothing else (serialx
configures the descriptor the link opened; pyserial, used before, added two cancel pipes of
two ends each, 5 a port). The rest of the daemon needs a fixed ``BASE``: the outbox
(database, WAL, shared memory), the journal, the MQTT socket, the metrics listener and its
clients, the radio and the optical probe, the event loop's own (epoll, self-pipe), stdio and
logging. At start the daemon raises its soft limit as far as the hard limit allows; when even that
is too low for the configured hubs, it says how many hubs the limit allows.
"""

from __future__ import annotations

import resource

PER_HUB = 1
BASE = 64


def needed(hubs: int) -> int:
    return BASE + PER_HUB * hubs


def hubs_allowed(limit: int) -> int:
    return max(0, (limit - BASE) // PER_HUB)


def raise_open_file_limit(hubs: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE to the hard limit; a message when it cannot fit ``hubs``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed(hubs)
    target = max(soft, want) if hard == resource.RLIM_INFINITY else hard
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # keep the soft limit we have; judged below
    if soft != resource.RLIM_INFINITY and soft < want:
        return (
            f"the open-file limit ({soft}) allows at most {hubs_allowed(soft)} hub(s), and "
            f"this config has {hubs}: each hub takes {PER_HUB} descriptors and the rest of "
            f"the daemon {BASE}, so {want} are needed; raise LimitNOFILE= in the unit (or "
            "ulimit -n)"
        )
    return None
