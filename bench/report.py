"""How every benchmark reports: rows of gatewayd against its peer, and docs/benchmarks.md.

A row holds the medians of both sides and every repetition's ratio (gatewayd ÷ peer, so
lower is better for times and CPU, higher for rates), and the issue's target for that
ratio when there is one. The document is rewritten between two markers only, so the
hand-written account of what each change bought stays.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BEGIN = "<!-- bench:figures begin (written by python -m bench) -->"
END = "<!-- bench:figures end -->"


@dataclass(frozen=True)
class Target:
    """The ratio's bound: ``at_most`` for costs, ``at_least`` for rates."""

    bound: float
    at_most: bool = True

    def met(self, ratio: float) -> bool:
        return ratio <= self.bound if self.at_most else ratio >= self.bound

    def __str__(self) -> str:
        return f"{'≤' if self.at_most else '≥'} {self.bound:g}×"  # noqa: RUF001 (the times sign, as in the docs)


@dataclass(frozen=True)
class Row:
    figure: str
    ours: str
    peer: str
    ratios: Sequence[float]
    target: Target | None = None
    note: str = ""
    check: bool | None = None  # a bound on the figure itself rather than on a ratio

    @property
    def median(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    def ratio_text(self) -> str:
        if not self.ratios:
            return "—"
        return f"{min(self.ratios):.2f} / {self.median:.2f} / {max(self.ratios):.2f}"

    def verdict(self) -> str:
        if self.target is None:
            if self.check is None:
                return ""
            return "met" if self.check else "**missed**"
        return "met" if self.ratios and self.target.met(self.median) else "**missed**"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model}), "
        f"Python {platform.python_version()} ({sys.implementation.name})"
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| figure | gatewayd | peer | ratio min / median / max | target | |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = str(r.target) if r.target else ""
        note = f" ({r.note})" if r.note else ""
        lines.append(
            f"| {r.figure}{note} | {r.ours} | {r.peer} | {r.ratio_text()} | {target} "
            f"| {r.verdict()} |"
        )
    return "\n".join(lines)


def figures_section(rows: Sequence[Row], command: str, notes: Sequence[str]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        BEGIN,
        "",
        f"Last run: {when}, with `{command}`.",
        "",
        f"Machine: {machine()}.",
        "",
        table(rows),
        "",
        *[f"- {n}" for n in notes],
        "",
        END,
    ]
    return "\n".join(parts)


def write_document(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path``, creating the file if need be."""
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = (text or "# Benchmarks\n\n") + section + "\n"
    path.write_text(text)
