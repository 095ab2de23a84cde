"""A refused request or DCC notice never repeats an MPAN (valid or not), an MPRN or an install
code, in its log line or in its MQTT answer, as docs/operations.md and docs/mqtt.md say: the
reason keeps the key path and the kind of problem, not the value.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

import pytest

from gatewayd.config.errors import ConfigError
from gatewayd.config.job import mpan_check_digit, parse_job
from gatewayd.contract import Topics
from gatewayd.daemon.mqtt_link import InboundMessage
from gatewayd.daemon.request_handler import RequestHandler

TOPICS = Topics("kit-1")
CORE = "192837465019"
MPAN = CORE + str(mpan_check_digit(CORE))
BAD_MPAN = CORE + str((mpan_check_digit(CORE) + 1) % 10)
MPRN = "8675309123"
CODES = ("5A3C9E1F7B2D4068A1C3E5F7092B4D6F", "D4E6F8091A2B3C4D5E6F708192A3B4C5")
JOB: dict[str, Any] = {
    "job_id": "J-1",
    "fuels": ["electricity", "gas"],
    "mpan": MPAN,
    "mprn": MPRN,
    "supply": "single_phase",
    "devices": [
        {"eui64": "00-DB-12-34-56-78-90-A1", "type": "ESME", "install_code": CODES[0]},
        {"eui64": "00-DB-12-34-56-78-90-A2", "type": "GSME", "install_code": CODES[1]},
    ],
}
SECRETS = (MPAN, BAD_MPAN, MPRN, BAD_MPAN[:12], "19283746501A9", MPRN + "4", *CODES)


class Link:
    """Keeps what the handler publishes."""

    session = 1

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish_if_connected(self, topic: str, payload: bytes, **_: Any) -> None:
        self.published.append((topic, payload))


def handler(link: Link) -> RequestHandler:
    # A refusal reaches none of the kit's parts: they are not needed.
    return RequestHandler(
        topics=TOPICS,
        link=link,  # type: ignore[arg-type]
        jobs=None,  # type: ignore[arg-type]
        surveys=None,  # type: ignore[arg-type]
        status=None,  # type: ignore[arg-type]
        birth=None,  # type: ignore[arg-type]
    )


def job_with(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(JOB)
    for key, value in changes.items():
        if key == "install_code":
            doc["devices"][0]["install_code"] = value
        else:
            doc[key] = value
    return doc


def secrets_in(text: str) -> list[str]:
    """Which of ``SECRETS`` ``text`` holds, also with separators or in another case."""
    squeezed = re.sub(r"[^0-9a-z]", "", text.lower())
    return [s for s in SECRETS if s.lower() in text.lower() or s.lower() in squeezed]


@pytest.mark.parametrize(
    ("job", "where", "words"),
    [
        (job_with(mpan=BAD_MPAN), "job.mpan", "check digit"),
        (job_with(mpan=BAD_MPAN[:12]), "job.mpan", "13 digits, got 12 characters"),
        (job_with(mpan="19283746501A9"), "job.mpan", "not all digits"),
        (job_with(mpan=int(BAD_MPAN)), "job.mpan", "quoted string"),
        (job_with(mprn=MPRN + "4"), "job.mprn", "6 to 10 digits, got 11 characters"),
        (job_with(install_code=CODES[0][:-1]), "job.devices[0].install_code", "32 hex digits"),
        # A back office that encodes the job twice: the whole document arrives as a string.
        (json.dumps(job_with(mpan=BAD_MPAN)), "job", "valid dictionary"),
    ],
    ids=["check-digit", "short", "letters", "number", "mprn", "install-code", "job-as-string"],
)
async def test_a_refused_start_job_repeats_no_mpan_mprn_or_install_code(
    caplog: pytest.LogCaptureFixture, job: Any, where: str, words: str
) -> None:
    link = Link()
    raw = json.dumps({"transaction": "t-1", "job": job}).encode()
    with caplog.at_level(logging.DEBUG):
        await handler(link).on_message(InboundMessage(TOPICS.request("start_job"), raw, False))
    [(topic, payload)] = link.published
    answer = json.loads(payload)
    assert topic == TOPICS.response("start_job") and answer["ok"] is False
    reason = answer["error"]["reason"]
    assert reason.startswith(f"{where}: ") and words in reason, reason
    [line] = [r.getMessage() for r in caplog.records if "request refused" in r.getMessage()]
    assert where in line and words in line, line
    assert secrets_in(payload.decode()) == []
    assert secrets_in("\n".join(r.getMessage() for r in caplog.records)) == []


@pytest.mark.parametrize(
    ("targets", "where", "words"),
    [
        ({"mpans": [MPAN, BAD_MPAN]}, "mpans[1]", "check digit"),
        ({"mpans": [BAD_MPAN[:12]]}, "mpans[0]", "13 digits"),
        ({"mprns": [MPRN + "4"]}, "mprns[0]", "6 to 10 digits"),
        # One MPAN where a list of them belongs: the wrong type is said, not the MPAN.
        ({"mpans": MPAN}, "mpans", "valid list"),
    ],
    ids=["check-digit", "short", "mprn", "not-a-list"],
)
async def test_a_refused_dcc_notice_is_logged_without_its_mpans_or_mprns(
    caplog: pytest.LogCaptureFixture, targets: dict[str, Any], where: str, words: str
) -> None:
    link = Link()
    notice = {"reference": "R-1", "received_at": "2026-01-01T00:00:00Z", **targets}
    with caplog.at_level(logging.DEBUG):
        await handler(link).on_message(
            InboundMessage(TOPICS.dcc_notice, json.dumps(notice).encode(), False)
        )
    assert link.published == []  # a notice gets no answer
    [line] = [r.getMessage() for r in caplog.records if "DCC notice refused" in r.getMessage()]
    assert where in line and words in line, line
    assert secrets_in(line) == []


def test_a_job_file_error_repeats_no_mpan_either() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job(job_with(mpan=BAD_MPAN, mprn=MPRN + "4"), source="job.toml")
    text = str(caught.value)
    assert "job.toml: mpan: fails the MPAN check digit: the last digit should be" in text
    assert "job.toml: mprn: an MPRN is 6 to 10 digits, got 11 characters" in text
    assert secrets_in(text) == []
