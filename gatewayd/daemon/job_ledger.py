"""The job ledger: every job id the kit has run, so that a job id runs once and ends once.

Publications side of the flow. A job is recorded when it starts, before it runs, and marked
*settled* in the same transaction that queues its result: a kit that crashes at any point
can tell afterwards whether a job's result is already queued (or sent), and never settles a
job twice; a ``start_job`` for an id the kit already ran is refused with ``job_exists``
instead of running again and replacing the retained result.

The table lives in the outbox's SQLite file (``Outbox`` runs these statements inside its own
transactions): only one file can hold the result and the mark in one commit. This module is
the table and its rules, as SQL over a connection already in a transaction.

Bounds: an id is remembered for ``DEFAULT_MAX_AGE_S`` (a year) after it started, and at most
``DEFAULT_MAX_IDS`` (20,000) settled ids are kept, the oldest going first. A year of a busy
installer's jobs is a few thousand, so the age bound is the one that acts; the count bound
only keeps a kit that is fed ids in a loop from filling its card.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_MAX_AGE_S",
    "DEFAULT_MAX_IDS",
    "SCHEMA",
    "JobRecord",
    "forget",
    "lookup",
    "prune",
    "record_settled",
    "record_start",
]

DEFAULT_MAX_AGE_S = 365 * 24 * 3600.0
DEFAULT_MAX_IDS = 20_000

# Created at every open: a file written before the ledger existed gains it, and keeps the
# schema version, as an older gatewayd can still use the file and ignores the table.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        settled_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_started_at ON jobs (started_at)",
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job id the kit ran: when it started, and when its result was queued (if it was)."""

    job_id: str
    started_at: datetime
    settled_at: datetime | None

    @property
    def settled(self) -> bool:
        """The job's result is queued or sent: nothing more may be published for it."""
        return self.settled_at is not None


def lookup(conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
    row = conn.execute(
        "SELECT started_at, settled_at FROM jobs WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return None
    settled = datetime.fromtimestamp(float(row[1]), UTC) if row[1] is not None else None
    return JobRecord(job_id, datetime.fromtimestamp(float(row[0]), UTC), settled)


def record_start(conn: sqlite3.Connection, job_id: str, started_at: float) -> bool:
    """Record a job that is about to run; False (and nothing written) if the id is known."""
    cur = conn.execute(
        "INSERT INTO jobs (job_id, started_at) VALUES (?, ?) ON CONFLICT (job_id) DO NOTHING",
        (job_id, started_at),
    )
    return cur.rowcount > 0


def record_settled(conn: sqlite3.Connection, job_id: str, at: float) -> None:
    """Mark the job settled; a job the ledger never saw start (it ran before the ledger
    existed) is recorded as started then. An earlier settle mark is kept."""
    conn.execute(
        "INSERT INTO jobs (job_id, started_at, settled_at) VALUES (?, ?, ?)"
        " ON CONFLICT (job_id) DO UPDATE SET settled_at = excluded.settled_at"
        " WHERE settled_at IS NULL",
        (job_id, at, at),
    )


def forget(conn: sqlite3.Connection, job_id: str) -> None:
    """Undo ``record_start`` of a job that never ran; a settled job is never forgotten."""
    conn.execute("DELETE FROM jobs WHERE job_id = ? AND settled_at IS NULL", (job_id,))


def prune(conn: sqlite3.Connection, *, now: float, max_age_s: float, max_ids: int) -> int:
    """Forget ids older than ``max_age_s``, then settled ids beyond the newest ``max_ids``.

    A job not settled yet is kept by the count bound: its result is still owed.
    """
    gone = conn.execute("DELETE FROM jobs WHERE started_at < ?", (now - max_age_s,)).rowcount
    gone += conn.execute(
        "DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE settled_at IS NOT NULL"
        " ORDER BY started_at DESC, job_id LIMIT -1 OFFSET ?)",
        (max_ids,),
    ).rowcount
    return int(gone)
