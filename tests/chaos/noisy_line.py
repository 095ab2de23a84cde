"""A hub behind a noisy serial line: every bit either way is flipped with a given probability.

The scenario's own ``corrupt`` fault flips one bit of a frame the hub sends; a bit-error
rate is what a long or badly screened cable does to both directions, flags and ACKs
included, so the noise is applied here to every byte crossing the line.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from gatewayd_sim.commshub.hub import HubSimulator
from gatewayd_sim.commshub.scenario import Scenario


class NoisyHub(HubSimulator):
    def __init__(
        self, scenario: Scenario, link: Path, *, speed: float, ber: float, seed: int
    ) -> None:
        super().__init__(scenario, link, speed=speed)
        self.ber = ber
        self._rng = random.Random(f"{seed}:line")
        self.bits = 0  # bits that crossed the line, both ways
        self.flipped = 0

    def _noisy(self, data: bytes) -> bytes:
        self.bits += 8 * len(data)
        if self.ber <= 0:
            return data
        out = bytearray(data)
        # The gap to the next flipped bit is geometric: one draw per error, not per bit.
        position = self._next_gap()
        while position < 8 * len(out):
            out[position // 8] ^= 1 << (position % 8)
            self.flipped += 1
            position += 1 + self._next_gap()
        return bytes(out)

    def _next_gap(self) -> int:
        # Bits before the next error; log(u)/log(1-p) rounded down is geometric(p).
        u = 1.0 - self._rng.random()  # in (0, 1]
        return int(math.log(u) / math.log1p(-self.ber))

    def _transmit(self, wire: bytes) -> bool:
        return super()._transmit(self._noisy(wire))

    def _on_data(self, data: bytes) -> None:
        super()._on_data(self._noisy(data))
