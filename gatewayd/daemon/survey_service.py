"""The daemon's RF surveys: ``request/survey`` in, the survey out on the ``survey`` topic.

Probe outcomes -> publications. One survey at a time on the kit's radio (a second request
while one runs is refused as ``radio_busy``). The hub to judge is the request's
``hub_eui64`` or, left out, the EUI-64 the kit's hub reports (GET_INFO); a hub that does not
answer leaves the survey unjudged, with the reason in it. Every survey with a position is
kept in the kit's ``SurveyStore``, which the daemon's jobs read for their HAN evidence
(``StoredSurveys``).

The survey code and models are imported when a job or a request first needs them, not with
this module: the daemon reaches READY without them, and only a survey imports the radio's
client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewayd.clock import Clock
from gatewayd.config.kit import KitConfig
from gatewayd.contract.decode import ErrorCode
from gatewayd.contract.messages import StampFields
from gatewayd.contract.topics import Topics
from gatewayd.daemon.publisher import Publisher
from gatewayd_drivers.commshub.client import HubClient
from gatewayd_drivers.commshub.errors import HubError
from gatewayd_drivers.commshub.eui64 import Eui64

if TYPE_CHECKING:
    from gatewayd.contract.requests import ErrorResponse, SurveyRequest, SurveyResponse
    from gatewayd.survey.judgement import SurveyDocument
    from gatewayd.survey.source import StoredSurveys
    from gatewayd.survey.store import SurveyStore

__all__ = ["SurveyService"]

_log = logging.getLogger(__name__)

HUB_INFO_TIMEOUT_S = 10.0


class SurveyService:
    def __init__(
        self,
        kit: KitConfig,
        clock: Clock,
        topics: Topics,
        publisher: Publisher,
        hubs: Callable[[str | None], HubClient | None],
    ) -> None:
        self.kit = kit
        self.clock = clock
        self.topics = topics
        self.publisher = publisher
        self._hubs = hubs
        self._store: SurveyStore | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self.kit.radio is not None

    @property
    def store(self) -> SurveyStore:
        """The kit's kept surveys, one store for the daemon's life (it caches what it read)."""
        if self._store is None:
            from gatewayd.survey.store import SurveyStore

            self._store = SurveyStore(self.kit.survey.store_dir)
        return self._store

    def source(self) -> StoredSurveys:
        """What a job reads: the latest stored survey at its failing device's position."""
        from gatewayd.survey.source import StoredSurveys

        return StoredSurveys(self.store, self.kit.survey, self.clock)

    def handle(self, req: SurveyRequest) -> SurveyResponse | ErrorResponse:
        from gatewayd.contract.requests import ErrorResponse, SurveyResponse

        if self.kit.radio is None:
            return ErrorResponse.refusing(
                req, ErrorCode.NO_RADIO, "this kit has no [radio] configured for RF surveys"
            )
        if self._task is not None and not self._task.done():
            return ErrorResponse.refusing(
                req, ErrorCode.RADIO_BUSY, "a survey is already running on the kit's radio"
            )
        hub = self._hubs(req.hub)
        if req.hub is not None and hub is None:
            return ErrorResponse.refusing(req, ErrorCode.UNKNOWN_HUB, f"hub: no hub {req.hub!r}")
        self._task = asyncio.create_task(self._run(req, hub), name=f"survey {req.position}")
        return SurveyResponse(
            transaction=req.transaction, position=req.position, survey_topic=self.topics.survey
        )

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _hub_eui(self, req: SurveyRequest, hub: HubClient | None) -> Eui64 | None:
        if req.hub_eui64 is not None:
            return Eui64.parse(req.hub_eui64)
        if hub is None:
            return None
        try:
            async with asyncio.timeout(HUB_INFO_TIMEOUT_S):
                return (await hub.get_info()).eui64
        except (HubError, TimeoutError) as exc:
            _log.warning("survey without a hub to judge: the hub did not say its EUI-64: %s", exc)
            return None

    async def _run(self, req: SurveyRequest, hub: HubClient | None) -> None:
        from gatewayd.survey.scan import SurveyFailed, survey_on_port

        radio = self.kit.radio
        assert radio is not None
        hub_eui = await self._hub_eui(req, hub)
        try:
            doc = await survey_on_port(
                radio.port,
                self.kit.survey,
                hub_eui=hub_eui,
                position=req.position,
                baudrate=radio.baudrate,
                clock=self.clock,
            )
        except SurveyFailed as exc:
            _log.warning("survey failed position=%s reason=%s", req.position, exc)
            self._emit(req, None, str(exc))
            return
        try:
            self.store.record(doc)
        except OSError as exc:
            _log.warning("survey not kept: %s", exc)
        _log.info("survey done position=%s judgement=%s", req.position, doc.judgement)
        self._emit(req, doc, None)

    def _emit(self, req: SurveyRequest, doc: SurveyDocument | None, error: str | None) -> None:
        from gatewayd.contract.survey import SurveyMessage

        def build(stamp: StampFields) -> SurveyMessage:
            return SurveyMessage(
                transaction=req.transaction,
                position=req.position,
                ok=error is None,
                survey=doc,
                error=error,
                **stamp.fields(),
            )

        self.publisher.emit(self.topics.survey, build, retain=True)
