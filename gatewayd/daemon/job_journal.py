"""Which jobs are running, on disk, so a job cut short by a crash still gets a result.

Publications side of the flow. A job is written here when it starts and
removed once its result is safely in the outbox. A daemon that starts and
finds entries left behind knows those jobs were interrupted (power cut,
SIGKILL) and publishes a ``failed`` result for each, so the back office is
never left waiting for a verdict that cannot come; unless the job ledger says
the job's result was queued before the stop (a kill between queueing it and
removing the entry), in which case the entry is only cleared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import Job, parse_job
from gatewayd.private_files import make_private_dir, private_opener

__all__ = ["InterruptedJob", "JobJournal", "JournalError"]

_log = logging.getLogger(__name__)


class JournalError(Exception):
    """A job could not be recorded; the message names the file and the OS error."""


@dataclass(frozen=True)
class InterruptedJob:
    job: Job
    hub: str
    started_at: datetime


class JobJournal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        make_private_dir(directory)

    def _path(self, job_id: str) -> Path:
        # Every Job's job_id passed the job id rule (gatewayd.config.job.check_job_id): no '/',
        # and never '.', '..' or a leading '.' or '-', so it is a plain file name in this directory.
        return self.directory / f"{job_id}.json"

    def begin(self, job: Job, hub: str, started_at: datetime) -> None:
        """Record a running job, durably, before it starts; ``JournalError`` if the disk
        refuses (full, failing, or out of file descriptors), with nothing left behind."""
        doc = {"job": job.model_dump(mode="json"), "hub": hub, "started_at": started_at.isoformat()}
        path = self._path(job.job_id)
        tmp = path.with_name(path.name + ".tmp")
        try:
            # 0600 whatever the umask: the entry holds the job's install codes and MPAN.
            with open(tmp, "w", encoding="utf-8", opener=private_opener) as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            # A half-written file would hold space on a disk that has none to spare.
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise JournalError(f"cannot record the job in {path}: {exc.strerror or exc}") from None

    def end(self, job_id: str) -> None:
        """The job's result is in the outbox: nothing is owed any more.

        A file that cannot be removed is only logged: the job ledger already says the job is
        settled, so the next start clears the entry without settling the job again.
        """
        path = self._path(job_id)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            _log.warning(
                "job journal entry not removed file=%s error=%r", path, exc.strerror or str(exc)
            )

    def interrupted(self) -> list[InterruptedJob]:
        """Jobs a previous run started and never finished, oldest first."""
        found: list[InterruptedJob] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                job = parse_job(doc["job"], source=str(path))
                found.append(
                    InterruptedJob(job, str(doc["hub"]), datetime.fromisoformat(doc["started_at"]))
                )
            except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
                aside = path.with_name(path.name + ".unreadable")
                os.replace(path, aside)
                _log.error(
                    "unreadable job journal entry moved aside file=%s error=%r", aside, str(exc)
                )
        return sorted(found, key=lambda j: j.started_at)
