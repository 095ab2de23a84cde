"""`gatewayd check-config FILE...`: say whether kit configs and job files are usable.

Before a kit goes out (or before ``systemctl reload``), an operator checks its files:
every problem is printed as ``FILE: key.path: reason``, all at once, and the exit code
is 2 if any file is invalid. A document with a top-level ``job_id`` is a job file,
anything else a kit config (``--kind`` overrides the guess). Beyond the schema, a kit
config's referenced files (password, TLS certificates) and serial ports (hubs, optical
probe, radio) are checked, and its weak settings (a password sent without TLS, TLS that does
not check the broker's name, metrics served beyond loopback) are named. They are warnings,
because a config is often checked away from the kit it is for (and a hub may simply be
unplugged); ``--strict``, run on the kit itself, makes them errors. A systemd credential the
config names exists only inside the service: outside it, a note says so, and not even
``--strict`` holds its absence against the file.

Only what ``register`` needs is imported at the top: every command imports every verb module, so
the config models (pydantic) are imported by the functions that use them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TextIO

from gatewayd.cli.verb import Subparsers

if TYPE_CHECKING:
    from gatewayd.config.errors import Problem
    from gatewayd.config.kit import KitConfig

__all__ = ["COMMAND", "Checked", "check_file", "main_check_config", "register"]

Kind = Literal["auto", "kit", "job"]


class Checked(NamedTuple):
    """What a file is and what is wrong with it: errors make it invalid, warnings and notes
    do not."""

    what: str
    errors: list[Problem]
    warnings: list[Problem]
    notes: list[Problem]


def _guess(doc: dict[str, Any], kind: Kind) -> Literal["kit", "job"]:
    if kind != "auto":
        return kind
    return "job" if "job_id" in doc else "kit"


def _referenced_files(kit: KitConfig) -> Iterator[tuple[str, Path]]:
    if kit.mqtt is not None:
        if kit.mqtt.password_file is not None:
            yield "mqtt.password_file", kit.mqtt.password_file
        tls = kit.mqtt.tls
        if tls is not None:
            for key in ("ca_file", "cert_file", "key_file"):
                value = getattr(tls, key)
                if value is not None:
                    yield f"mqtt.tls.{key}", value
    for key in ("tls_cert", "tls_key"):
        value = getattr(kit.metrics, key)
        if value is not None:
            yield f"metrics.{key}", value


def _serial_ports(kit: KitConfig) -> Iterator[tuple[str, str]]:
    for i, hub in enumerate(kit.all_hubs):
        yield ("hub.port" if kit.hub is not None else f"hubs[{i}].port"), hub.port
    if kit.optical is not None:
        yield "optical.port", kit.optical.port
    if kit.radio is not None:
        yield "radio.port", kit.radio.port


def _kit_warnings(kit: KitConfig) -> list[Problem]:
    from gatewayd.config.errors import Problem

    warnings: list[Problem] = []
    for key, path in _referenced_files(kit):
        if not path.is_file():
            warnings.append(Problem(key, f"{path}: no such file"))
        elif not os.access(path, os.R_OK):
            warnings.append(Problem(key, f"{path}: not readable by this user"))
    env = kit.mqtt.password_env if kit.mqtt is not None else None
    if env is not None and env not in os.environ:
        warnings.append(Problem("mqtt.password_env", f"${env} is not set here"))
    if kit.mqtt is not None:
        warnings.extend(Problem(weak.key, weak.reason) for weak in kit.mqtt.weak_settings())
    for key, port in _serial_ports(kit):
        if not Path(port).exists():
            warnings.append(Problem(key, f"{port} does not exist now (unplugged?)"))
    if not kit.metrics.loopback:
        warnings.append(
            Problem(
                "metrics.listen",
                f"{kit.metrics.listen} is not a loopback address: anyone who can reach it "
                "reads the kit's metrics",
            )
        )
    return warnings


def _credential(kit: KitConfig) -> tuple[list[Problem], list[Problem]]:
    """(warnings, notes) about the credential the kit config names, if it names one."""
    from gatewayd.config.errors import Problem
    from gatewayd.config.mqtt import CREDENTIALS_DIRECTORY, SecretError

    key = "mqtt.password_credential"
    try:
        path = kit.mqtt.credential_path() if kit.mqtt is not None else None
    except SecretError:
        # Only the service gets its credentials: their absence here says nothing about it.
        note = (
            f"${CREDENTIALS_DIRECTORY} is not set here, so the credential cannot be checked: "
            "only the service gets it (LoadCredential=), and gatewayd run refuses to start "
            "without it"
        )
        return [], [Problem(key, note)]
    if path is None:
        return [], []
    if not path.is_file():
        return [Problem(key, f"credential {path.name}: no such file in {path.parent}")], []
    if not os.access(path, os.R_OK):
        return [Problem(key, f"credential {path.name} in {path.parent}: not readable")], []
    return [], []


def check_file(path: Path, kind: Kind = "auto", *, strict: bool = False) -> Checked:
    """What the file is, its errors, warnings and notes; nothing is raised."""
    from gatewayd.config.errors import ConfigError, read_toml
    from gatewayd.config.job import parse_job
    from gatewayd.config.kit import parse_kit_config

    source = str(path)
    try:
        doc = read_toml(path)
    except ConfigError as exc:
        return Checked("file", list(exc.problems), [], [])
    what = _guess(doc, kind)
    try:
        if what == "job":
            parse_job(doc, source=source)
            return Checked("job file", [], [], [])
        kit = parse_kit_config(doc, source=source)
    except ConfigError as exc:
        return Checked("job file" if what == "job" else "kit config", list(exc.problems), [], [])
    credential_warnings, notes = _credential(kit)
    warnings = credential_warnings + _kit_warnings(kit)
    if strict:
        return Checked("kit config", warnings, [], notes)
    return Checked("kit config", [], warnings, notes)


def main_check_config(
    paths: Sequence[Path], kind: Kind = "auto", *, strict: bool = False, out: TextIO | None = None
) -> int:
    """Exit 0 when every file is usable, 2 when any is not."""
    stream = out or sys.stdout
    status = 0
    for path in paths:
        what, errors, warnings, notes = check_file(path, kind, strict=strict)
        for p in errors:
            print(p.render(str(path)), file=sys.stderr)
        for p in warnings:
            print(f"{p.render(str(path))} (warning)", file=sys.stderr)
        for p in notes:
            print(f"{p.render(str(path))} (note)", file=sys.stderr)
        if errors:
            status = 2
            n = len(errors)
            print(f"{path}: invalid {what}: {n} problem{'s' if n != 1 else ''}", file=stream)
        else:
            print(f"{path}: valid {what}", file=stream)
    return status


COMMAND = "check-config"


def register(subparsers: Subparsers) -> None:
    check = subparsers.add_parser(
        COMMAND,
        help="check kit configs and job files: every problem with its file and key",
        description="Prints every problem as FILE: key.path: reason. Exit 0 when every file "
        "is valid, 2 when any is not. A file with a top-level job_id is a job file.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument(
        "--kind", choices=["auto", "kit", "job"], default="auto", help="what the files are"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="on the kit itself: missing hub ports, password and certificate files, and weak "
        "settings are errors",
    )
    check.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    return main_check_config(args.files, args.kind, strict=args.strict)
