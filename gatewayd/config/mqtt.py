"""The kit config's ``[mqtt]`` table: which broker, who the kit is, how it authenticates.

Publications side of the flow. Secrets are never in the config itself: the
password comes from a file, an environment variable or a systemd credential named
here, is read when a connection is made, and never appears in a log line or a repr.

Some settings work but let others in: ``weak_settings`` names them, for ``check-config`` to
warn about and the daemon to log at start.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gatewayd.config.errors import Loc, RuleViolations, require_pair
from gatewayd.config.ops import loopback_host

__all__ = [
    "CREDENTIALS_DIRECTORY",
    "CREDENTIAL_NAME",
    "RESERVED_KIT_IDS",
    "TOPIC_LEVEL",
    "MqttConfig",
    "MqttProtocol",
    "MqttTls",
    "SecretError",
    "WeakSetting",
]

# One MQTT topic level that is safe everywhere: no separators or wildcards.
TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Fleet-wide topics live beside the kits' own (``<prefix>/region/...``): a kit with one of
# these ids would share their topic space. Declared with the kit's own id rather than in the
# contract, so that reading a kit config pulls in nothing of the MQTT side.
RESERVED_KIT_IDS: Final = frozenset({"region", "fleet"})

# Where systemd puts a service's credentials (LoadCredential=), for the service alone.
CREDENTIALS_DIRECTORY: Final = "CREDENTIALS_DIRECTORY"
# A credential's name is a file name in that directory: this safe subset, never "." or "..".
CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_PASSWORD_SOURCES: Final = ("password_file", "password_env", "password_credential")

_STRICT = ConfigDict(extra="forbid", frozen=True)


class SecretError(RuntimeError):
    """The configured password file, variable or credential cannot be read (says which, never
    the value)."""


@dataclass(frozen=True, slots=True)
class WeakSetting:
    """A setting the kit runs with that lets others read or pose as what it talks to.

    Every field is safe to print: none holds a secret.
    """

    key: str  # the TOML key path, from the top of the kit config
    problem: str
    why: str
    instead: str

    @property
    def reason(self) -> str:
        return f"{self.problem}: {self.why}; {self.instead}"


class MqttProtocol(enum.StrEnum):
    V5 = "5"
    V311 = "3.1.1"


class MqttTls(BaseModel):
    """TLS to the broker: the CA to trust and, for client-certificate auth, cert and key."""

    model_config = _STRICT

    ca_file: Path | None = Field(default=None, description="CA bundle; None: the system's")
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="Skip host name checks (testing only)")

    @model_validator(mode="after")
    def _pair(self) -> Self:
        require_pair(self, "cert_file", "key_file")
        return self


class MqttConfig(BaseModel):
    """Where and how the kit publishes. Only ``kit_id`` is required."""

    model_config = _STRICT

    kit_id: str = Field(pattern=TOPIC_LEVEL.pattern, description="This kit's name in topics")
    host: str = Field(default="localhost", min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="1883, or 8883 with TLS")
    prefix: str = Field(default="gatewayd", pattern=r"^[A-Za-z0-9._/-]{1,128}$")
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    protocol: MqttProtocol = MqttProtocol.V5
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password_credential: str | None = Field(
        default=None,
        pattern=CREDENTIAL_NAME.pattern,
        description="A systemd credential (LoadCredential=) that holds the password",
    )
    tls: MqttTls | None = None
    max_inflight: int = Field(
        default=20,
        ge=1,
        le=65535,
        description=(
            "Messages published and awaiting the broker's PUBACK at once. At most the broker's "
            "Receive Maximum (MQTT 5; mosquitto's max_inflight_messages, 20 by default)"
        ),
    )
    reconnect_first_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    state_dir: Path = Field(
        default=Path("/var/lib/gatewayd"), description="Session counter and outbox live here"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[Loc, str]] = []
        if self.kit_id in RESERVED_KIT_IDS:
            problems.append((("kit_id",), f"{self.kit_id!r} is reserved for fleet-wide topics"))
        given = [key for key in _PASSWORD_SOURCES if getattr(self, key) is not None]
        if len(given) > 1:
            problems.append(
                (
                    (given[-1],),
                    f"give one of {', '.join(_PASSWORD_SOURCES)}, not {' and '.join(given)}",
                )
            )
        if self.reconnect_max_s < self.reconnect_first_s:
            problems.append((("reconnect_max_s",), "must be at least reconnect_first_s"))
        if self.prefix.startswith("/") or self.prefix.endswith("/") or "//" in self.prefix:
            problems.append((("prefix",), "no leading, trailing or doubled '/'"))
        if problems:
            raise RuleViolations(problems)
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883

    @property
    def effective_client_id(self) -> str:
        # One client id per kit: the broker then drops a stale connection of the same kit.
        return self.client_id or f"gatewayd-{self.kit_id}"

    def weak_settings(self) -> tuple[WeakSetting, ...]:
        """The settings here that leave the kit's MQTT traffic open to others, worst first."""
        weak: list[WeakSetting] = []
        if self.tls is not None and self.tls.insecure:
            trusted = (
                "the CA in mqtt.tls.ca_file"
                if self.tls.ca_file is not None
                else "any CA the system trusts"
            )
            weak.append(
                WeakSetting(
                    key="mqtt.tls.insecure",
                    problem="the kit does not check that the broker's certificate is for "
                    f"{self.host}",
                    why=f"any certificate from {trusted} passes, so whoever can redirect the "
                    "kit's traffic can pose as the broker: read the kit's results (and its "
                    "password, if it has one) and send it jobs",
                    instead=f"remove it, and give the broker a certificate for {self.host}",
                )
            )
        password_key = next(
            (f"mqtt.{key}" for key in _PASSWORD_SOURCES if getattr(self, key) is not None), None
        )
        # A broker on the kit itself is exempt: the password never leaves the machine.
        if password_key is not None and self.tls is None and not loopback_host(self.host):
            port = ""
            if self.port is None:
                port = " (the port then defaults to 8883)"
            elif self.port != 8883:
                port = f", and set port to the broker's TLS port (usually 8883), not {self.port}"
            weak.append(
                WeakSetting(
                    key=password_key,
                    problem=f"the password goes to {self.host}:{self.effective_port} without TLS",
                    why="anyone on the network between the kit and the broker can read it and "
                    "connect as the kit",
                    instead=f"add an [mqtt.tls] table{port}",
                )
            )
        return tuple(weak)

    def read_password(self) -> str | None:
        """The password, read now from its file, variable or credential; raises ``SecretError``."""
        if self.password_file is not None:
            return _read_secret(
                self.password_file, f"cannot read mqtt.password_file {self.password_file}"
            )
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise SecretError(f"mqtt.password_env: ${self.password_env} is not set")
            return value
        credential = self.credential_path()
        if credential is not None:
            return _read_secret(
                credential,
                f"mqtt.password_credential: cannot read credential {credential.name} in "
                f"${CREDENTIALS_DIRECTORY} ({credential.parent})",
                f"; the unit must load it: LoadCredential={credential.name}:PATH",
            )
        return None

    def credential_path(self) -> Path | None:
        """Where ``password_credential`` is in this process; None when none is configured.

        Raises ``SecretError`` when systemd gave this process no credentials.
        """
        name = self.password_credential
        if name is None:
            return None
        directory = os.environ.get(CREDENTIALS_DIRECTORY, "")
        if not directory:
            raise SecretError(
                f"mqtt.password_credential: ${CREDENTIALS_DIRECTORY} is not set, so there is no "
                f"credential {name}: systemd sets it for a unit with LoadCredential={name}:PATH "
                "(systemd/gatewayd.service); outside systemd, use password_file"
            )
        return Path(directory) / name


def _read_secret(path: Path, cannot: str, hint: str = "") -> str:
    """The file's text less its trailing newline; or ``SecretError``: ``cannot``, why, ``hint``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"{cannot}: {exc.strerror}{hint}") from None
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        # The codec's own message quotes a byte of the password.
        raise SecretError(f"{cannot}: not UTF-8 text") from None
