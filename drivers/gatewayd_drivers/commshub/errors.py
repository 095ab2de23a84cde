"""Typed errors of the hub client: every call ends with a result or one of these."""

from __future__ import annotations

from gatewayd_drivers.commshub.messages import Cmd, Status, as_enum, enum_name


class HubError(Exception):
    """Base of every error the hub client raises."""


class HubTimeout(HubError):
    """The hub did not answer a request, resends included (spec section 3)."""

    def __init__(self, cmd: Cmd | int, waited_s: float, detail: str = "") -> None:
        self.cmd = cmd
        self.waited_s = waited_s
        extra = f"; {detail}" if detail else ""
        super().__init__(
            f"hub did not answer {enum_name(as_enum(Cmd, int(cmd)))} within {waited_s:.1f} s "
            f"(two resends){extra}"
        )


class HubStatusError(HubError):
    """The hub answered with a status other than OK."""

    def __init__(self, code: Status | int, cmd: Cmd | int) -> None:
        self.code: Status | int = as_enum(Status, int(code))
        self.cmd = cmd
        super().__init__(
            f"hub refused {enum_name(as_enum(Cmd, int(cmd)))}: status {enum_name(self.code)}"
        )


class HubDisconnected(HubError):
    """The serial port to the hub is not open, or closed while a request waited."""
