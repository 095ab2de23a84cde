"""Where a job gets the RF survey at a failing device's position: stored, or taken now.

Probe outcomes side of the flow. When a required device has not joined, the commissioning
run asks its ``SurveySource`` for a survey at that device. ``StoredSurveys`` answers with the
latest one kept for that position (from ``gatewayd survey --at`` or an MQTT survey request),
of the same hub and young enough. ``PromptedSurveys`` first asks the installer, on a
terminal only, to carry the kit to the device and runs a survey there; a skipped prompt
falls back to the stored survey.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TextIO

from gatewayd.cli.survey import survey_on_port
from gatewayd.clock import Clock
from gatewayd.config.job import Device
from gatewayd.config.survey import RadioConfig, SurveyConfig
from gatewayd.engine.outcomes import HubFacts, SurveyEvidence
from gatewayd.survey.judgement import SurveyDocument, evidence_from
from gatewayd.survey.store import SurveyStore

__all__ = ["PromptedSurveys", "StoredSurveys", "SurveySource", "read_line"]

_log = logging.getLogger(__name__)


class SurveySource(Protocol):
    async def survey_for(self, device: Device, hub: HubFacts | None) -> SurveyEvidence | None:
        """The survey at ``device``'s position to quote in its HAN evidence, if any."""
        ...


class StoredSurveys:
    """The latest kept survey at the device's position."""

    def __init__(self, store: SurveyStore, cfg: SurveyConfig, clock: Clock) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock

    def lookup(self, device: Device, hub: HubFacts | None) -> SurveyDocument | None:
        return self.store.latest(
            str(device.eui64),
            hub_eui=hub.eui64 if hub is not None else None,
            now=self.clock.wall(),
            max_age_s=self.cfg.max_age_s,
        )

    async def survey_for(self, device: Device, hub: HubFacts | None) -> SurveyEvidence | None:
        doc = self.lookup(device, hub)
        return evidence_from(doc, "stored") if doc is not None else None


async def read_line(stream: TextIO) -> str:
    """One line from a terminal without blocking the event loop (and cancellable)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    fd = stream.fileno()

    def ready() -> None:
        if not done.done():
            done.set_result(stream.readline())

    loop.add_reader(fd, ready)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


Surveyor = Callable[[HubFacts, str], Awaitable[SurveyDocument]]


class PromptedSurveys:
    """Ask the installer to take the kit to the device, then survey there.

    ``surveyor(hub, position)`` runs one survey on the kit's radio; ``ask(text)`` shows the
    prompt and returns the installer's answer line. Only built for a terminal session.
    """

    def __init__(
        self,
        stored: StoredSurveys,
        surveyor: Surveyor,
        ask: Callable[[str], Awaitable[str]],
        say: Callable[[str], None],
    ) -> None:
        self.stored = stored
        self.surveyor = surveyor
        self.ask = ask
        self.say = say

    async def survey_for(self, device: Device, hub: HubFacts | None) -> SurveyEvidence | None:
        if hub is None:
            return await self.stored.survey_for(device, hub)
        answer = await self.ask(
            f"The {device.type.name} {device.eui64} did not join. Carry the kit to it and "
            "press Enter to take an RF survey there (or type s and Enter to skip): "
        )
        if answer.strip().lower().startswith("s") or answer == "":
            self.say("Survey skipped.")
            return await self.stored.survey_for(device, hub)
        position = str(device.eui64)
        try:
            doc = await self.surveyor(hub, position)
        except Exception as exc:  # the verdict must still come; the reason is shown
            self.say(f"The survey could not be taken: {exc}")
            _log.info("survey at %s failed: %s", position, exc)
            return await self.stored.survey_for(device, hub)
        self.stored.store.record(doc)
        if doc.judgement is not None:
            self.say(f"Survey at the {device.type.name}: the hub is {doc.judgement.value}.")
        return evidence_from(doc, "prompt")


def terminal_prompt(
    out: TextIO = sys.stdout, inp: TextIO = sys.stdin
) -> Callable[[str], Awaitable[str]]:
    async def ask(text: str) -> str:
        out.write(text)
        out.flush()
        return await read_line(inp)

    return ask


def radio_surveyor(radio: RadioConfig, cfg: SurveyConfig, clock: Clock | None = None) -> Surveyor:
    async def survey(hub: HubFacts, position: str) -> SurveyDocument:
        return await survey_on_port(
            radio.port,
            cfg,
            hub_eui=hub.eui64,
            position=position,
            baudrate=radio.baudrate,
            clock=clock,
        )

    return survey
