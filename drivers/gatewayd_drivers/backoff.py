"""Capped exponential backoff with jitter: the one way the project spaces out retries.

Used by the serial link's reopen loop here in ``drivers`` and, in gatewayd, by
the probes' poll schedule (``gatewayd.engine.retry``) and the MQTT link's
reconnects (``gatewayd.daemon.mqtt_link``), so all follow the same rules:

- the n-th interval (n from 0) has the base ``min(max_s, first_s * factor ** n)``;
- jitter spreads it by up to ``jitter`` of itself either way, uniformly, from an
  injectable ``random.Random`` (seed it in tests);
- ``max_s`` is a hard ceiling: a jittered interval is clipped to it.

Jitter keeps many kits that lost the same thing at the same moment from retrying in
lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffSettings"]


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    """The numbers of a backoff; ``start`` makes a fresh one."""

    first_s: float = 0.05
    max_s: float = 2.0
    factor: float = 2.0
    jitter: float = 0.1

    def start(self, rng: random.Random | None = None) -> Backoff:
        return Backoff(self.first_s, self.factor, self.max_s, self.jitter, rng)


class Backoff:
    """Capped exponential backoff with proportional jitter (rules in the module docstring)."""

    def __init__(
        self,
        first_s: float,
        factor: float,
        max_s: float,
        jitter: float,
        rng: random.Random | None = None,
    ) -> None:
        if not first_s > 0:
            raise ValueError(f"first interval must be greater than 0, got {first_s}")
        if factor < 1:
            raise ValueError(f"backoff factor must be at least 1, got {factor}")
        if max_s < first_s:
            raise ValueError(f"max interval {max_s} is below the first interval {first_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self._first = first_s
        self._factor = factor
        self._max = max_s
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._base = first_s
        self._step = 0

    @property
    def step(self) -> int:
        """How many times the interval has been advanced since the last reset."""
        return self._step

    @property
    def base(self) -> float:
        """The current interval before jitter."""
        return self._base

    def draw(self) -> float:
        """A jittered interval at the current step, without advancing."""
        spread = self._jitter * self._rng.uniform(-1.0, 1.0)
        return min(self._max, self._base * (1.0 + spread))

    def advance(self) -> None:
        self._step += 1
        # Multiplying step by step (not factor ** step) cannot overflow after a long run.
        self._base = min(self._max, self._base * self._factor)

    def next_delay(self) -> float:
        """A jittered interval at the current step, then advance: for reconnect loops."""
        delay = self.draw()
        self.advance()
        return delay

    def reset(self) -> None:
        self._base = self._first
        self._step = 0
