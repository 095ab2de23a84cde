"""One log line per outage of a resource that is retried: when it fails, and when it works again.

Lifecycle side of the daemon. Code that retries a disk (the publisher's outbox writes, say)
tells a ``FaultLog`` each failure and each success. The first failure of an outage is logged at
the given level with the error; further failures are not (the retry loop would otherwise write
a line every few seconds for as long as a disk stays full); the first success after a failure
logs that it works again, with how many failures it took.
"""

from __future__ import annotations

import logging

__all__ = ["FaultLog"]


class FaultLog:
    def __init__(self, logger: logging.Logger, what: str, *, level: int = logging.ERROR) -> None:
        # ``what`` names the resource in the log lines' words, e.g. "outbox writes".
        self._logger = logger
        self._what = what
        self._level = level
        self.failures = 0  # in the current outage

    @property
    def active(self) -> bool:
        """A failure was reported and no success since."""
        return self.failures > 0

    def failed(self, error: object, consequence: str) -> None:
        """The resource failed; ``consequence`` says, in words, what the caller does instead."""
        self.failures += 1
        if self.failures == 1:
            self._logger.log(
                self._level,
                "%s failing, %s error=%r",
                self._what,
                consequence,
                str(error),
            )

    def recovered(self) -> None:
        """The resource worked (again)."""
        if self.failures:
            self._logger.warning("%s work again failures=%d", self._what, self.failures)
            self.failures = 0
