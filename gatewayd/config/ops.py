"""The kit config's operations tables: ``[metrics]`` (the Prometheus endpoint) and ``[log]``.

Neither touches a job: they shape how the daemon is watched. ``log.level`` is one of
the keys a SIGHUP reloads live; the metrics address needs a restart.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatewayd.config.errors import require_pair

__all__ = [
    "DEFAULT_METRICS_LISTEN",
    "LogConfig",
    "LogLevel",
    "MetricsConfig",
    "loopback_host",
    "split_listen",
]

DEFAULT_METRICS_LISTEN = "127.0.0.1:9477"

_STRICT = ConfigDict(extra="forbid", frozen=True)


def loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's own, ``localhost`` included."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9477"`` or ``"[::1]:9477"`` -> host and port; raises ``ValueError``."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} must be HOST:PORT, e.g. {DEFAULT_METRICS_LISTEN!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. '[::1]:9477'")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{value!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is outside 0-65535")
    if not host.strip():
        raise ValueError(f"{value!r}: the host is empty")
    return host, port


class MetricsConfig(BaseModel):
    """Where ``gatewayd run`` serves ``/metrics``. Loopback by default: a kit's metrics are
    read by a Prometheus agent on the kit, not from the van's mobile network."""

    model_config = _STRICT

    enabled: bool = True
    listen: str = Field(default=DEFAULT_METRICS_LISTEN, description="HOST:PORT of /metrics")
    tls_cert: Path | None = Field(default=None, description="PEM certificate: serve HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key for tls_cert")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @model_validator(mode="after")
    def _pair(self) -> Self:
        require_pair(self, "tls_cert", "tls_key")
        return self

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def loopback(self) -> bool:
        return loopback_host(self.host)


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def number(self) -> int:
        return int(logging.getLevelName(self.value.upper()))


class LogConfig(BaseModel):
    """The daemon's log: one key=value line per event on stdout (journald reads it)."""

    model_config = _STRICT

    level: LogLevel = LogLevel.INFO
