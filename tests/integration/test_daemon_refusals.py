"""Unsafe job ids and numbers out of range, sent to a running daemon over a real mosquitto.

Each gets the error response docs/mqtt.md promises a refused request (``ok: false``,
``invalid_request``, the transaction echoed, a reason naming the key), and starts nothing: no
job topic, no file in the job journal, the hub still free for the next good job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_daemon_mqtt import PREFIX, job_doc, make_rig


def _with(doc: dict[str, Any], number: str) -> bytes:
    """``doc`` as JSON with ``number`` written where the string "@" stands."""
    text = json.dumps(doc)
    assert text.count('"@"') == 1
    return text.replace('"@"', number).encode()


def _timing(transaction: str, **timing: object) -> dict[str, Any]:
    return {"transaction": transaction, "job": {**job_doc("J-8"), "timing": timing}}


def _device_required(transaction: str) -> dict[str, Any]:
    job = job_doc("J-9")
    job["devices"][1] = {**job["devices"][1], "required": "@"}
    return {"transaction": transaction, "job": job}


async def test_unsafe_job_ids_and_numbers_out_of_range_are_refused_and_start_nothing(
    tmp_path: Path,
) -> None:
    async with make_rig(tmp_path, "wan_never") as rig:
        sub = rig.sub
        cases: list[tuple[str, Any, str, str]] = [
            ("start_job", {"transaction": "a", "job": job_doc("..")}, "a",
             "job.job_id: '..' is not a usable job id"),
            ("start_job", {"transaction": "b", "job": job_doc(".hidden")}, "b",
             "job.job_id: '.hidden' is not a usable job id"),
            ("start_job", {"transaction": "c", "job": job_doc("-rf")}, "c",
             "job.job_id: '-rf' is not a usable job id"),
            ("cancel_job", {"transaction": "d", "job_id": ".."}, "d",
             "job_id: '..' is not a usable job id"),
            ("start_job", _with(_timing("n1", wan_deadline_s="@"), "1e400"), "n1",
             "job.timing.wan_deadline_s: 1e400 is out of range"),
            ("start_job", _with(_device_required("n2"), "-1e400"), "n2",
             "job.devices[1].required: -1e400 is out of range"),
            ("start_job", _with(_timing("n3", han_deadline_s="@"), "NaN"), "n3",
             "job.timing.han_deadline_s: NaN is not a JSON number"),
        ]  # fmt: skip
        for command, body, transaction, reason in cases:
            resp = await sub.request(command, body)
            assert resp["ok"] is False, (command, resp)
            assert resp == {
                "schema": "gatewayd.error_response/1",
                "transaction": transaction,
                "ok": False,
                "error": {"code": "invalid_request", "reason": resp["error"]["reason"]},
            }, (command, resp)
            assert resp["error"]["reason"].startswith(reason), resp["error"]["reason"]

        # The hub is still free, and only the good job is in the journal.
        ok = await sub.request("start_job", {"transaction": "e", "job": job_doc("J-5")})
        assert ok["ok"] is True, ok
        journal = tmp_path / "state" / "jobs"
        assert sorted(p.name for p in journal.iterdir()) == ["J-5.json"]
        job_topics = {
            s.topic.split("/")[3] for s in sub.seen if s.topic.startswith(f"{PREFIX}/jobs/")
        }
        assert job_topics <= {"J-5"}
        again = await sub.request("cancel_job", {"transaction": "f", "job_id": "J-5"})
        assert again["ok"] is True


@pytest.fixture(autouse=True)
def _quiet_paho(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
