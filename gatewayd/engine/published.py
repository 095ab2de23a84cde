"""How the engine's facts are written when they leave it: enum labels and values, picked fields.

Flow: probe outcomes -> verdict -> **publications**. Every outcome record says once, in its
``published()`` method, what its fields are called and how they are written; the verdict
picks its evidence from that, the result document is validated from it, and progress notes
quote it. This module holds what those methods share. Pure: no I/O.

A ``Fact`` is a JSON value, except that times stay ``datetime``: the result document keeps
them typed (and writes them its own way), while evidence and progress data take them as
ISO 8601 text (``as_json``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TypeAlias

from pydantic import JsonValue

__all__ = ["Fact", "Facts", "as_json", "enum_label", "enum_value", "pick"]

Fact: TypeAlias = "bool | int | float | str | datetime | list[Fact] | dict[str, Fact] | None"
Facts: TypeAlias = dict[str, Fact]


def enum_label(value: enum.IntEnum | int | None) -> str | None:
    """A published name for a hub enum: ``connected``, ``single_band``; ``unknown(7)`` for a
    number the spec does not list; None for None."""
    if value is None:
        return None
    if isinstance(value, enum.IntEnum):
        return value.name.lower()
    return f"unknown({value})"


def enum_value(value: enum.StrEnum | None) -> str | None:
    """One of our own enums as published (its value, ``single_phase``); None for None."""
    return None if value is None else value.value


def as_json(fact: Fact) -> JsonValue:
    """``fact`` with every time written as ISO 8601 text."""
    if isinstance(fact, datetime):
        return fact.isoformat()
    if isinstance(fact, list):
        return [as_json(f) for f in fact]
    if isinstance(fact, dict):
        return {k: as_json(v) for k, v in fact.items()}
    return fact


def pick(facts: Mapping[str, Fact], *keys: str) -> dict[str, JsonValue]:
    """The named fields of ``facts`` as JSON, in the order named (the order they publish in)."""
    return {k: as_json(facts[k]) for k in keys}
