"""Turn every way a job file or kit config can be wrong into one readable ``ConfigError``.

Flow: this sits before the probes. Job files and the kit config are the inputs that decide
what the kit does with the bytes, frames and hub events; when one is wrong the installer
needs every problem at once, each as ``FILE: key.path[0].sub: reason``, with no traceback
and no links to library documentation.

Three kinds of failure come through here: a file that is missing or unreadable, TOML that
does not parse, and a document that parses but does not validate (pydantic). Models report
cross-field rules through ``RuleViolations`` so that those, too, name the key they are about.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = [
    "MAX_DOTS_PER_LINE",
    "ConfigError",
    "Loc",
    "Problem",
    "RuleViolations",
    "format_loc",
    "read_toml",
    "require_pair",
    "validate_document",
]

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

# Error types whose input we echo back; echoing a whole table or list would drown the reason.
_SCALARS = (str, int, float, bool)
# Longer strings are not echoed either: one is more likely a document sent as a string (a job
# JSON-encoded twice, with its install codes and MPAN) than a value mistyped.
_ECHO_MAX_CHARS = 64
# Keys whose values are secrets of a sort (an install code lets a device join a HAN) or
# personal data (a meter point number identifies a home): never echoed.
_SECRET_KEYS = frozenset({"install_code", "mpan", "mpans", "mprn", "mprns", "password"})
# No real config has a key of more than a few dotted parts; see _dotted_keys_too_deep.
MAX_DOTS_PER_LINE = 100


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at one key path (empty path: the document as a whole)."""

    path: str
    reason: str

    def render(self, source: str) -> str:
        return f"{source}: {self.path or '(top level)'}: {self.reason}"


class ConfigError(Exception):
    """A configuration document that cannot be used; ``str()`` lists every problem."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.source = source
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(p.render(self.source) for p in self.problems)


class RuleViolations(ValueError):
    """Raised by a model validator to report cross-field problems at their own key paths.

    Each location is relative to the model that raises it; the formatter prefixes the
    model's own location in the document.
    """

    def __init__(self, problems: Iterable[tuple[Loc, str]]) -> None:
        self.problems: tuple[tuple[Loc, str], ...] = tuple(problems)
        super().__init__("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in self.problems))


def format_loc(loc: Loc) -> str:
    """``("devices", 0, "eui64")`` -> ``devices[0].eui64``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def require_pair(model: BaseModel, first: str, second: str) -> None:
    """Two keys that go together (a certificate and its key): both or neither, or the
    missing one is reported at its own key."""
    a, b = getattr(model, first), getattr(model, second)
    if (a is None) != (b is None):
        missing = second if b is None else first
        raise RuleViolations([((missing,), f"{first} and {second} go together")])


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file; every failure becomes a ``ConfigError`` naming the file."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, [Problem("", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [Problem("", "is a directory, not a file")]) from None
    except PermissionError:
        raise ConfigError(source, [Problem("", "permission denied")]) from None
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            source, [Problem("", f"not UTF-8 text (bad byte at offset {exc.start})")]
        ) from None
    too_deep = _dotted_keys_too_deep(text)
    if too_deep is not None:
        raise ConfigError(source, [Problem("", f"invalid TOML: {too_deep}")])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("", f"invalid TOML: {exc}")]) from None
    except RecursionError:
        # tomllib reads arrays and inline tables by recursion: a few hundred levels of them
        # exhaust Python's stack before any syntax error is found.
        raise ConfigError(
            source, [Problem("", "invalid TOML: arrays or inline tables nest too deeply")]
        ) from None


def _dotted_keys_too_deep(text: str) -> str | None:
    """Why ``text`` has a line with too many dots, or None.

    tomllib takes time quadratic in the parts of a dotted key, and in those of the table it
    is under (a key of 100,000 parts takes minutes). A key never spans lines, so capping the
    dots of each line caps every key. Comment lines hold no key and are not counted.
    """
    if text.count(".") <= MAX_DOTS_PER_LINE:
        return None
    for number, line in enumerate(text.split("\n"), start=1):
        dots = line.count(".")
        if dots > MAX_DOTS_PER_LINE and not line.lstrip(" \t").startswith("#"):
            return (
                f"line {number} has {dots} dots, more than the {MAX_DOTS_PER_LINE} a line may "
                "have: its keys nest too deeply"
            )
    return None


def validate_document(model: type[M], data: object, source: str) -> M:
    """``model.model_validate(data)``, with failures turned into a ``ConfigError``."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            source, [Problem("", f"expected a table of keys, got {type(data).__name__}")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _from_validation_error(source, exc, model) from None


def _from_validation_error(
    source: str, exc: ValidationError, model: type[BaseModel]
) -> ConfigError:
    problems: list[Problem] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, RuleViolations):
            for sub_loc, msg in ctx_error.problems:
                problems.append(Problem(format_loc(loc + sub_loc), msg))
            continue
        problems.append(Problem(format_loc(loc), _reason(err, loc, model)))
    return ConfigError(source, problems)


def _reason(err: Any, loc: Loc, model: type[BaseModel]) -> str:
    kind: str = err["type"]
    msg: str = err["msg"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        hint = f" (known keys: {', '.join(known)})" if known else ""
        return f"unknown key{hint}"
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    value = err.get("input")
    secret = any(part in _SECRET_KEYS for part in loc)
    short = not isinstance(value, str) or len(value) <= _ECHO_MAX_CHARS
    if not secret and short and isinstance(value, _SCALARS) and repr(value) not in msg:
        msg = f"{msg}, got {value!r}"
    return msg[:1].lower() + msg[1:]


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at ``loc`` inside ``model``, for an 'unknown key' hint."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = _field_by_key(current, part)
        if field is None:
            return []
        current = _model_in(field.annotation)
    if current is None:
        return []
    return sorted(f.alias or name for name, f in current.model_fields.items())


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X | None`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
