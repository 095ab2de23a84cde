"""The back office's jobs: one after another on each hub, resent until the kit takes them.

A ``start_job`` whose answer does not come (the broker or the kit is down) is sent again
with the same ``job_id``, as a back office would; ``job_exists`` then means the kit had
taken the first one, and an error answer is retried after a pause, since the id must stay
usable. The next job on a hub goes once the previous one's result is in (or its wait ran
out: the figures count it as missing). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.chaos.backoffice import BackOffice, Received
from tests.chaos.hubs import Slot
from tests.chaos.sites import Site

JobIds = Callable[[], str | None]  # the next job id, or None: no more jobs
REQUEST_TIMEOUT_S = 3.0  # the kit answers in milliseconds; longer means it did not get it
RETRY_PAUSE_S = 0.5


@dataclass
class JobRecord:
    job_id: str
    hub: str
    site: Site
    first_sent: float  # loop time of the first start_job
    answers: list[str] = field(default_factory=list)  # "ok", an error code, or "none"
    accepted: str | None = None  # how we know the kit took it: "ok", "job_exists", "seen"
    result_at: float | None = None  # loop time the first result arrived


@dataclass
class _JobView:
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    probing: bool = False
    result: asyncio.Event = field(default_factory=asyncio.Event)
    result_at: float | None = None


class Tracker:
    """What the back office has heard of each job so far, to wait on."""

    def __init__(self, office: BackOffice) -> None:
        self._prefix = f"{office.base}/jobs/"
        self._jobs: dict[str, _JobView] = {}
        office.listen(self._on_message)
        for seen in office.received:
            self._on_message(seen)

    def view(self, job_id: str) -> _JobView:
        return self._jobs.setdefault(job_id, _JobView())

    def _on_message(self, seen: Received) -> None:
        if not seen.topic.startswith(self._prefix):
            return
        job_id, _, leaf = seen.topic[len(self._prefix) :].partition("/")
        view = self.view(job_id)
        view.seen.set()
        if leaf == "result":
            if view.result_at is None:
                view.result_at = seen.at
            view.result.set()
        elif leaf == "events" and isinstance(seen.body, dict):
            view.probing = seen.body.get("stage") in ("wan", "han")

    def probing(self, job_id: str) -> bool:
        view = self._jobs.get(job_id)
        return view is not None and view.probing and not view.result.is_set()


@dataclass
class Dispatcher:
    office: BackOffice
    tracker: Tracker
    start_deadline_s: float  # how long one job may wait to be taken
    result_timeout_s: float  # how long one job may wait for its result
    records: list[JobRecord] = field(default_factory=list)
    current: dict[str, JobRecord] = field(default_factory=dict)  # by hub: the job on it now

    def probing_hubs(self) -> list[str]:
        """The hubs whose current job is in its WAN or HAN probe."""
        return [hub for hub, r in self.current.items() if self.tracker.probing(r.job_id)]

    async def run_hub(self, slot: Slot, job_ids: JobIds) -> None:
        """Jobs on ``slot`` one after another while ``job_ids`` gives a new id."""
        while True:
            try:
                async with asyncio.timeout(self.start_deadline_s):
                    await slot.ready.wait()
            except TimeoutError:
                break  # the hub was never given back: no more jobs on it
            job_id = job_ids()
            if job_id is None:
                break
            record = JobRecord(job_id, slot.name, slot.site, asyncio.get_running_loop().time())
            self.records.append(record)
            self.current[slot.name] = record
            await self._start(record)
            if record.accepted is None:
                continue
            view = self.tracker.view(job_id)
            try:
                async with asyncio.timeout(self.result_timeout_s):
                    await view.result.wait()
            except TimeoutError:
                pass
            record.result_at = view.result_at
        self.current.pop(slot.name, None)

    async def _start(self, record: JobRecord) -> None:
        view = self.tracker.view(record.job_id)
        request = {"hub": record.hub, "job": record.site.job(record.job_id)}
        try:
            async with asyncio.timeout(self.start_deadline_s):
                while True:
                    answer = await self.office.request("start_job", request, REQUEST_TIMEOUT_S)
                    if answer is None:
                        record.answers.append("none")
                    elif answer.get("ok") is True:
                        record.answers.append("ok")
                        record.accepted = "ok"
                        return
                    else:
                        code = str((answer.get("error") or {}).get("code"))
                        record.answers.append(code)
                        if code == "job_exists":
                            record.accepted = "job_exists"
                            return
                    if view.seen.is_set():
                        # Its events are out: an earlier copy of the request was taken.
                        record.accepted = "seen"
                        return
                    if answer is not None:
                        await asyncio.sleep(RETRY_PAUSE_S)
        except TimeoutError:
            if view.seen.is_set():
                record.accepted = "seen"


def numbered(prefix: str, count: int, done: asyncio.Event | None = None) -> JobIds:
    """A source of job ids ``<prefix>-001`` ...: ``count`` at most, none once ``done`` is set."""
    numbers = iter(range(1, count + 1))

    def next_id() -> str | None:
        n = next(numbers, None)
        stop = n is None or (done is not None and done.is_set())
        return None if stop else f"{prefix}-{n:03d}"

    return next_id
