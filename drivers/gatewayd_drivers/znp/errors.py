"""Typed errors of the ZNP client: every call ends with a result or one of these."""

from __future__ import annotations


class ZnpError(Exception):
    """Base of every error the ZNP client raises."""


class ZnpTimeout(ZnpError):
    """The stick did not answer (an SRSP or an awaited callback) in time."""


class ZnpStatusError(ZnpError):
    """The stick answered with a status other than SUCCESS."""

    def __init__(self, what: str, status: int) -> None:
        self.status = status
        super().__init__(f"the radio refused {what}: status {status:#04x}")


class ZnpCommandError(ZnpError):
    """The stick answered with an MT RPC error: it does not know the command or its layout."""


class ZnpDisconnected(ZnpError):
    """The radio's serial port is not open, or closed while a request waited."""
