"""Where a job gets the RF survey at a failing device's position: stored, or taken now.

Probe outcomes side of the flow. When a required device has not joined, the commissioning
run asks its ``SurveySource`` for a survey at that device. ``StoredSurveys`` answers with the
latest one kept for that position (from ``gatewayd survey --at`` or an MQTT survey request),
of the same hub and young enough. ``PromptedSurveys`` first asks the installer, on a
terminal only (through the ``ask``/``say`` callbacks the CLI gives it), to carry the kit to
the device and runs a survey there; a skipped prompt falls back to the stored survey.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from gatewayd.clock import Clock
from gatewayd.config.job import Device
from gatewayd.config.survey import SurveyConfig
from gatewayd.engine.outcomes import HubFacts, SurveyEvidence
from gatewayd.survey.judgement import SurveyDocument, evidence_from
from gatewayd.survey.store import SurveyStore

__all__ = ["PromptedSurveys", "StoredSurveys", "SurveySource", "Surveyor"]

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
