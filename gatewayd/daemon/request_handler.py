"""The daemon's inbox: requests from back offices answered, DCC notices routed.

Messages in -> the daemon's parts. A message on ``request/<command>`` is parsed and always
answered on ``response/<command>``, with the refusal and its reason when it is not a valid
request (on ``request_errors`` when ``<command>`` is no safe topic level); a message on a
DCC notice topic goes to the running jobs it concerns, and a bad one is only logged
(notices get no response).

Only live messages act (domain rule): a retained message, which the broker replays on
every (re)subscription, is ignored and logged, and an empty payload, which only clears a
retained topic, is ignored quietly.

The request, response and DCC notice models are imported when the first message arrives, not
with this module: the daemon reaches READY without them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gatewayd.contract import RequestTopic, Topics, is_safe_level, to_payload
from gatewayd.daemon.birth import Birth
from gatewayd.daemon.jobs import JobRunner
from gatewayd.daemon.mqtt_link import InboundMessage, MqttLink
from gatewayd.daemon.status import KitStatus
from gatewayd.daemon.survey_service import SurveyService

if TYPE_CHECKING:
    from gatewayd.contract import Response

__all__ = ["RequestHandler"]

_log = logging.getLogger(__name__)


class RequestHandler:
    def __init__(
        self,
        *,
        topics: Topics,
        link: MqttLink,
        jobs: JobRunner,
        surveys: SurveyService,
        status: KitStatus,
        birth: Birth,
    ) -> None:
        self._topics = topics
        self._link = link
        self._jobs = jobs
        self._surveys = surveys
        self._status = status
        self._birth = birth

    async def on_message(self, message: InboundMessage) -> None:
        where = self._topics.match(message.topic)
        if where is None:
            return
        if not message.payload:
            _log.debug("empty message ignored topic=%r", message.topic)
            return
        if message.retain:
            # Only live messages act: publish requests and DCC notices not retained.
            _log.warning("retained message ignored topic=%r", message.topic)
            return
        if isinstance(where, RequestTopic):
            response = self.answer(where.command, message.payload)
            topic = (
                self._topics.response(where.command)
                if is_safe_level(where.command)
                else self._topics.request_errors
            )
            await self._link.publish_if_connected(topic, to_payload(response))
        else:
            self._route_dcc_notice(message.payload, message.topic)

    def answer(self, command: str, raw: bytes) -> Response:
        from gatewayd.contract import (
            CancelJobRequest,
            ErrorCode,
            ErrorDetail,
            ErrorResponse,
            RebirthRequest,
            RebirthResponse,
            Request,
            StartJobRequest,
            StatusRequest,
            SurveyRequest,
            parse_request,
        )

        request: Request | ErrorResponse = parse_request(command, raw)
        if isinstance(request, ErrorResponse):
            # %r: a command name is raw input and must not add key=value fields to the line.
            _log.warning("request refused command=%r reason=%r", command, request.error.reason)
            return request
        match request:
            case StartJobRequest():
                return self._jobs.start(request)
            case CancelJobRequest():
                return self._jobs.cancel(request)
            case StatusRequest():
                return self._status.response(request)
            case RebirthRequest():
                self._birth.rebirth_soon()
                return RebirthResponse(transaction=request.transaction, session=self._link.session)
            case SurveyRequest():
                return self._surveys.handle(request)
        return ErrorResponse(  # pragma: no cover - parse_request knows the commands
            transaction=None,
            error=ErrorDetail.of(ErrorCode.UNKNOWN_COMMAND, f"unknown command {command!r}"),
        )

    def _route_dcc_notice(self, raw: bytes, topic: str) -> None:
        from gatewayd.contract import ErrorDetail, parse_dcc_notice

        notice = parse_dcc_notice(raw)
        if isinstance(notice, ErrorDetail):
            _log.warning("DCC notice refused topic=%r reason=%r", topic, notice.reason)
            return
        self._jobs.deliver_notice(notice)
