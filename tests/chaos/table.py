"""The figures as a Markdown table, the form docs/reliability.md quotes them in."""

from __future__ import annotations

from tests.chaos.figures import Figures

COLUMNS = (
    ("run", "run"),
    ("jobs started", "jobs_started"),
    ("not started", "jobs_not_started"),
    ("one result", "results_ok"),
    ("no result", "results_missing"),
    ("two or more results", "results_conflicting"),
    ("job events (lost)", "job_events"),
    ("hub events (lost while running)", "hub_events"),
    ("lost to a SIGKILL (allowed)", "hub_events_lost_to_kills"),
    ("job events the broker lost (SIGKILL after its PUBACK)", "job_events_lost_to_broker_kills"),
    ("duplicates, new event_id", "duplicates"),
    ("redeliveries, same event_id", "redeliveries"),
    ("wrong verdicts", "wrong_verdicts"),
    ("failed, as allowed", "failed_allowed"),
    ("holds", "holds"),
    ("seconds", "seconds"),
)


def _cell(figures: Figures, key: str) -> str:
    if key == "job_events":
        return f"{figures.job_events} ({figures.job_events_lost})"
    if key == "hub_events":
        return f"{figures.hub_events} ({figures.hub_events_lost})"
    if key == "holds":
        return "yes" if figures.holds else "**no**"
    return str(getattr(figures, key))


def markdown(rows: list[Figures]) -> str:
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for figures in rows:
        if figures.skipped:
            lines.append(f"| {figures.run} | skipped: {figures.skipped} |")
            continue
        lines.append("| " + " | ".join(_cell(figures, key) for _, key in COLUMNS) + " |")
    return "\n".join(lines)


def chaos_lines(rows: list[Figures]) -> str:
    """What each run did, one line each."""
    out = []
    for figures in rows:
        done = ", ".join(f"{what}: {n:g}" for what, n in figures.chaos.items())
        out.append(f"- {figures.run}: {done or 'nothing'}")
    return "\n".join(out)
