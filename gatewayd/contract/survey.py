"""The ``survey`` topic: RF surveys the kit's radio took at a back office's request.

Publications side of the flow. A ``request/survey`` is answered at once on
``response/survey``; the survey itself (a few seconds of scanning) follows here, retained,
through the durable outbox: the ``SurveyDocument`` that ``gatewayd survey --json`` prints,
or the reason it could not be taken.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gatewayd.survey.judgement import SurveyDocument

from .messages import Envelope

__all__ = ["SurveyMessage"]


class SurveyMessage(Envelope):
    """``survey``: one RF survey (or why it failed), echoing the request's transaction."""

    schema_: Literal["gatewayd.survey/1"] = Field(default="gatewayd.survey/1", alias="schema")
    transaction: str | None = Field(description="The survey request's transaction")
    position: str
    ok: bool
    survey: SurveyDocument | None = Field(description="The survey, when ok")
    error: str | None = Field(description="Why no survey was taken, when not ok")
