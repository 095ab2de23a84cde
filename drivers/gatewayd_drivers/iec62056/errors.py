"""Typed errors of the optical reader, one per way a read can fail.

Each names the protocol step it happened in, so a job's note and the CLI's message can say
what went wrong without a traceback.
"""

from __future__ import annotations

__all__ = [
    "BaudSwitchError",
    "BccError",
    "IdentificationError",
    "OpticalError",
    "OpticalTimeout",
    "PortError",
    "ReadoutError",
    "UnsupportedModeError",
]


class OpticalError(Exception):
    """Anything that stopped a meter read; ``step`` is the protocol step."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


class PortError(OpticalError):
    """The probe's serial port could not be opened, set up, or was lost."""


class OpticalTimeout(OpticalError):
    """The meter did not answer (or stopped answering) within the step's time."""


class IdentificationError(OpticalError):
    """The identification message is not ``/XXXZ...Ident CR LF``."""


class UnsupportedModeError(OpticalError):
    """The meter announced a protocol mode this reader does not speak (only mode C)."""


class BaudSwitchError(OpticalError):
    """The port would not change to the baud rate agreed with the meter."""


class ReadoutError(OpticalError):
    """The data message is malformed, too long, or does not parse."""


class BccError(ReadoutError):
    """The data message's block check character does not match its contents."""
