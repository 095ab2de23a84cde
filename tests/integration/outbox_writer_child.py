"""A process that appends to an outbox until it is killed: for the crash test.

Usage: python -m tests.integration.outbox_writer_child PATH START
Appends payload ``msg <n>`` for n = START, START+1, ... and prints ``A <id> <n>`` once each
append has returned (so the message counts as queued), then acknowledges every third entry
and prints ``K <id>`` once that ack has returned.
"""

from __future__ import annotations

import itertools
import sys

from gatewayd.clock import SystemClock
from gatewayd.daemon.outbox import MessageKind, Outbox


def main(path: str, start: int) -> None:
    box = Outbox(path, clock=SystemClock())
    print("ready", flush=True)
    for n in itertools.count(start):
        kind = MessageKind.RESULT if n % 10 == 0 else MessageKind.EVENT
        entry = box.append("gatewayd/kit-crash/event", f"msg {n}".encode(), kind=kind)
        print(f"A {entry.id} {n}", flush=True)
        if n % 3 == 0:
            box.ack(entry.id)
            print(f"K {entry.id}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
