"""Line and firmware faults from a scenario's ``[faults]``, deterministic for a given seed.

Counted faults (BUSY, dropped responses) are used up per command; random ones
(noise, bit flips) each draw from their own generator seeded from the scenario's
seed, so the frames a run corrupts do not depend on how noise bursts interleave.
"""

from __future__ import annotations

import random
from collections import Counter

from gatewayd_drivers.commshub.framing import FLAG
from gatewayd_sim.commshub.scenario import FaultsSection


class Faults:
    def __init__(self, config: FaultsSection, seed: int) -> None:
        self.config = config
        self._corrupt_rng = random.Random(f"{seed}:corrupt")
        self._noise_rng = random.Random(f"{seed}:noise")
        self._busy: Counter[int] = Counter()
        self._drop: Counter[int] = Counter()
        for item in config.busy:
            self._busy[item.cmd] += item.count
        for item in config.drop_responses:
            self._drop[item.cmd] += item.count
        self._slow = {int(item.cmd): item.delay_ms / 1000.0 for item in config.slow}
        self.injected: Counter[str] = Counter()

    @property
    def duplicate_events(self) -> bool:
        return self.config.duplicate_events

    @property
    def ignore_acks(self) -> bool:
        return self.config.ignore_acks

    def take_busy(self, cmd: int) -> bool:
        """True when this request must be answered BUSY (uses one of the count)."""
        return self._take(self._busy, cmd, "busy")

    def take_drop(self, cmd: int) -> bool:
        """True when this freshly computed answer must not be transmitted."""
        return self._take(self._drop, cmd, "drop_response")

    def delay_s(self, cmd: int) -> float:
        return self._slow.get(cmd, 0.0)

    def corrupt(self, wire: bytes) -> bytes:
        """With the scenario's probability, flip one bit between the frame's flags."""
        if self.config.corrupt <= 0 or len(wire) < 3:
            return wire
        rng = self._corrupt_rng
        if rng.random() >= self.config.corrupt:
            return wire
        out = bytearray(wire)
        index = rng.randrange(1, len(out) - 1)
        out[index] ^= 1 << rng.randrange(8)
        self.injected["corrupt"] += 1
        return bytes(out)

    def noise(self) -> bytes:
        """A burst of line noise; never a flag, so it cannot open or close a frame."""
        if self.config.noise is None:
            return b""
        self.injected["noise"] += 1
        rng = self._noise_rng
        return bytes(rng.choice(_NOISE_ALPHABET) for _ in range(self.config.noise.bytes))

    def _take(self, counter: Counter[int], cmd: int, what: str) -> bool:
        if counter[cmd] <= 0:
            return False
        counter[cmd] -= 1
        self.injected[what] += 1
        return True


_NOISE_ALPHABET = bytes(b for b in range(256) if b != FLAG)
