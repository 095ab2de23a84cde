"""systemd/udev/99-gatewayd.rules: well-formed udev rules that give the hub, the radio and
the probe stable names any unit can depend on.

systemd 252 has no `udevadm verify` (it came in 253), so the rules are parsed here with
udev's own grammar: comma-separated KEY{attr}OP"value" pairs, match operators only on
match keys, assignments only on assignment keys, and every GOTO with its LABEL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "systemd" / "udev" / "99-gatewayd.rules"

_MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
    "DRIVER", "DRIVERS", "ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TAG", "TAGS", "TEST",
    "PROGRAM", "RESULT",
}  # fmt: skip
_ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG",
    "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS", "PROGRAM",
}  # fmt: skip
_WITH_ATTRIBUTE = {"ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TEST", "IMPORT", "RUN", "SECLABEL"}
_PAIR = re.compile(r'\s*([A-Z]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


@dataclass(frozen=True)
class Pair:
    key: str
    attr: str | None
    op: str
    value: str


def _parse_line(line: str, number: int) -> list[Pair]:
    pairs: list[Pair] = []
    rest = line
    while rest:
        match = _PAIR.match(rest)
        assert match, f"{RULES.name}:{number}: cannot parse {rest!r}"
        key, attr, op, value = match.groups()
        where = f"{RULES.name}:{number}: {key}"
        if op in {"==", "!="}:
            assert key in _MATCH_KEYS, f"{where} is not a match key"
        else:
            assert key in _ASSIGN_KEYS, f"{where} cannot be assigned"
        if key in _WITH_ATTRIBUTE:
            assert attr, f"{where} needs {{attribute}}"
        else:
            assert attr is None, f"{where} takes no {{attribute}}"
        pairs.append(Pair(key, attr, op, value))
        rest = rest[match.end() :]
        if rest:
            assert rest.startswith(","), f"{RULES.name}:{number}: expected ',' before {rest!r}"
            rest = rest[1:]
    return pairs


def _rules() -> list[list[Pair]]:
    rules = []
    for number, raw in enumerate(RULES.read_text().splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            assert not line.endswith("\\"), f"{RULES.name}:{number}: keep each rule on one line"
            rules.append(_parse_line(line, number))
    return rules


def _value(rule: list[Pair], key: str, attr: str | None = None) -> str | None:
    for pair in rule:
        if pair.key == key and pair.attr == attr:
            return pair.value
    return None


def test_every_line_parses_and_every_goto_has_its_label() -> None:
    rules = _rules()
    gotos = {pair.value for rule in rules for pair in rule if pair.key == "GOTO"}
    labels = {pair.value for rule in rules for pair in rule if pair.key == "LABEL"}
    assert gotos <= labels, gotos - labels


def test_hub_radio_and_probe_get_stable_names_for_dialout_and_systemd() -> None:
    named: dict[str, int] = {}
    for rule in _rules():
        symlinks = [p.value for p in rule if p.key == "SYMLINK" and p.op == "+="]
        if not symlinks:
            continue
        assert len(symlinks) == 1
        name = symlinks[0]
        assert name in {"gatewayd/hub", "gatewayd/radio", "gatewayd/probe"}, name
        named[name] = named.get(name, 0) + 1
        assert _value(rule, "GROUP") == "dialout", name
        assert _value(rule, "MODE") == "0660", name
        assert any(p.key == "TAG" and p.op == "+=" and p.value == "systemd" for p in rule), name
        for attr in ("idVendor", "idProduct"):
            value = _value(rule, "ATTRS", attr)
            assert value is not None, f"{name}: no ATTRS{{{attr}}}"
            assert re.fullmatch(r"[0-9a-f]{4}", value), f"{name}: {attr} {value!r}"
        # Devices of the same chip (hub cable and probe are both FTDI) are told apart
        # by their serial number.
        serial = _value(rule, "ATTRS", "serial")
        assert serial, f"{name}: match the device's serial number too"
    assert set(named) == {"gatewayd/hub", "gatewayd/radio", "gatewayd/probe"}


def test_rules_only_apply_to_serial_ports() -> None:
    first = _rules()[0]
    assert first == [Pair("SUBSYSTEM", None, "!=", "tty"), Pair("GOTO", None, "=", "gatewayd_end")]
