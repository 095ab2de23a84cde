"""One chaos run's world: a loopback broker, simulated hubs, the kit as a process, a back office.

``world()`` builds it in a work directory and tears every piece down in ``finally``, however
the run ends. ``World.settle()`` ends a run the way the figures need: broker and kit up,
every job's result in (or its wait run out), then a clean stop of the kit, whose
``offline`` comes after everything its outbox still held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.backoffice import BackOffice, Received
from tests.chaos.broker import ChaosBroker
from tests.chaos.dispatch import Dispatcher, Tracker
from tests.chaos.figures import Figures, count
from tests.chaos.hubs import HubBank, MakeHub
from tests.chaos.kit import Kit
from tests.chaos.plan import Plan
from tests.chaos.verdicts import allowed_verdicts, verdict_of

KIT_ID = "kit-chaos"
ONLINE_TIMEOUT_S = 30.0  # a kit starting on two busy cores, with a full outbox to replay


@dataclass
class World:
    workdir: Path
    broker: ChaosBroker
    office: BackOffice
    hubs: HubBank
    kit: Kit
    dispatcher: Dispatcher
    started: float
    settle_s: float  # how long the end waits for results still queued

    @property
    def tracker(self) -> Tracker:
        return self.dispatcher.tracker

    def _highest_session(self) -> int:
        return max((s.body["session"] for s in self._states()), default=0)

    def _states(self) -> list[Received]:
        return [s for s in self.office.on_topic("state") if isinstance(s.body, dict)]

    async def start_kit(self) -> None:
        """Start the daemon and wait until it is online with a new session (bounded)."""
        before = self._highest_session()
        await self.kit.start()
        if self.broker.running:
            await self.office.wait_for(
                lambda s: (
                    s.topic == f"{self.office.base}/state"
                    and isinstance(s.body, dict)
                    and s.body.get("state") == "online"
                    and s.body.get("session", 0) > before
                ),
                ONLINE_TIMEOUT_S,
            )

    async def kill_kit(self) -> None:
        await self.kit.kill()

    async def kill_broker(self) -> None:
        await asyncio.to_thread(self.broker.kill)

    async def start_broker(self) -> None:
        # mosquitto's start polls its port with time.sleep: keep the hubs' timers running.
        await asyncio.to_thread(self.broker.start)

    async def settle(self) -> None:
        """Broker and kit up, every taken job's result in (bounded), then a clean stop."""
        if not self.broker.running:
            await self.start_broker()
        if not self.kit.running:
            await self.start_kit()
        waits = [
            self.tracker.view(r.job_id).result.wait()
            for r in self.dispatcher.records
            if r.accepted is not None
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settle_s):
                await asyncio.gather(*waits)
        for record in self.dispatcher.records:
            record.result_at = self.tracker.view(record.job_id).result_at
        last = self._highest_session()
        await self.kit.stop()
        await self.office.wait_for(
            lambda s: (
                s.topic == f"{self.office.base}/state"
                and isinstance(s.body, dict)
                and s.body.get("state") == "offline"
                and s.body.get("session") == last
            ),
            self.settle_s,
        )

    def figures(self, name: str) -> Figures:
        end = asyncio.get_running_loop().time()
        figures = Figures(run=name, seconds=round(end - self.started, 1))
        self._write_journal(end)
        return count(
            figures,
            base=self.office.base,
            received=self.office.received,
            records=self.dispatcher.records,
            slots=self.hubs.slots,
            kills=self.kit.kill_times(),
            end=end,
            broker_kills=self.broker.kill_times,
        )

    def _write_journal(self, end: float) -> None:
        """Every job as the back office saw it, in ``jobs.json``, to look into a figure."""
        rows = []
        slots = {slot.name: slot for slot in self.hubs}
        kills = self.kit.kill_times()
        for r in self.dispatcher.records:
            results = self.office.on_topic(f"jobs/{r.job_id}/result")
            allowed = allowed_verdicts(r, slots[r.hub], kills, end)
            rows.append(
                {
                    "job_id": r.job_id,
                    "hub": r.hub,
                    "site": r.site.name,
                    "answers": r.answers,
                    "accepted": r.accepted,
                    "sent_s": round(r.first_sent - self.started, 3),
                    "result_s": None
                    if r.result_at is None
                    else round(r.result_at - self.started, 3),
                    "verdicts": sorted(
                        {verdict_of(x.body) for x in results if isinstance(x.body, dict)}
                    ),
                    "allowed": sorted(allowed.verdicts),
                    "cut_short_by": list(allowed.why),
                }
            )
        (self.workdir / "jobs.json").write_text(json.dumps(rows, indent=1) + "\n")


@contextlib.asynccontextmanager
async def world(
    workdir: Path,
    *,
    hubs: int,
    make_hub: MakeHub,
    plan: Plan,
    state_dir: Path | None = None,
) -> AsyncIterator[World]:
    """Broker, hubs, back office and kit (online), stopped and killed in ``finally``."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    broker = ChaosBroker(workdir / "broker")
    bank = HubBank(workdir, hubs, make_hub)
    kit = Kit.write(
        workdir,
        kit_id=KIT_ID,
        host=broker.host,
        port=broker.port,
        state_dir=state_dir or workdir / "state",
        hub_links=bank.links(),
    )
    office = BackOffice(broker.host, broker.port, f"gatewayd/{KIT_ID}")
    office_task: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(broker.start)
        await bank.start()
        office_task = asyncio.create_task(office.run(), name="back office")
        async with asyncio.timeout(ONLINE_TIMEOUT_S):
            await office.connected.wait()
        dispatcher = Dispatcher(office, Tracker(office), plan.wait_s, plan.wait_s)
        here = World(workdir, broker, office, bank, kit, dispatcher, loop.time(), plan.settle_s)
        await here.start_kit()
        yield here
    finally:
        await kit.kill()
        if office_task is not None:
            office_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await office_task
        await bank.stop()
        await asyncio.to_thread(broker.stop)
