"""The demo's back office: sends jobs to the kit over MQTT and shows what the kit publishes.

Demo only, and deliberately a plain MQTT client of the documented contract
(``docs/mqtt.md``): it knows topics and JSON, not the daemon's insides. It sends one
``start_job`` per site, a DCC notice to the site that wants one, prints each job's
steps and verdicts (with abort codes) as they arrive, and scrapes the metrics
endpoint at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiomqtt

from gatewayd.config.mqtt import MqttConfig, MqttProtocol
from gatewayd.contract import Topics
from gatewayd.daemon.mqtt_link import tls_params

__all__ = ["BackOffice", "SiteRun"]

# Real seconds the whole tour may take before the demo gives up waiting for results.
RESULTS_TIMEOUT_S = 120.0
# Metric families the demo prints after the jobs (non-zero samples only).
SHOWN_METRICS = (
    "gatewayd_jobs_total",
    "gatewayd_aborts_total",
    "gatewayd_probe_attempts_total",
    "gatewayd_mqtt_connected",
    "gatewayd_outbox_messages",
)


@dataclass(frozen=True)
class SiteRun:
    hub: str
    title: str
    job: dict[str, Any]
    dcc_after_s: float | None = None

    @property
    def job_id(self) -> str:
        return str(self.job["job_id"])


@dataclass
class _Progress:
    results: dict[str, str] = field(default_factory=dict)


class BackOffice:
    def __init__(self, mqtt: MqttConfig, speed: float, out: TextIO | None = None) -> None:
        self.mqtt = mqtt
        self.speed = speed
        self.topics = Topics(mqtt.kit_id, mqtt.prefix)
        self.out = out or sys.stdout

    def _client(self) -> aiomqtt.Client:
        c = self.mqtt
        return aiomqtt.Client(
            c.host,
            c.effective_port,
            identifier=f"gatewayd-demo-office-{os.getpid()}",
            protocol=(
                aiomqtt.ProtocolVersion.V5
                if c.protocol is MqttProtocol.V5
                else aiomqtt.ProtocolVersion.V311
            ),
            username=c.username,
            password=c.read_password(),
            tls_params=tls_params(c),
            tls_insecure=c.tls.insecure if c.tls is not None else None,
        )

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def run_jobs(self, runs: Sequence[SiteRun]) -> list[str]:
        """Send every job, follow them to their results; one verdict line per site."""
        by_id = {r.job_id: r for r in runs}
        progress = _Progress()
        async with self._client() as client:
            await client.subscribe(f"{self.topics.base}/#", qos=1)
            timers: list[asyncio.Task[None]] = []
            try:
                async with asyncio.timeout(RESULTS_TIMEOUT_S):
                    await self._wait_online(client)
                    for run in runs:
                        request = {"transaction": run.job_id, "hub": run.hub, "job": run.job}
                        await client.publish(
                            self.topics.request("start_job"), json.dumps(request), qos=1
                        )
                        if run.dcc_after_s is not None:
                            timers.append(asyncio.create_task(self._notice_later(client, run)))
                    async for message in client.messages:
                        self._show(str(message.topic), message.payload, by_id, progress)
                        if len(progress.results) == len(runs):
                            break
            except TimeoutError:
                self._say(f"gatewayd demo: no result after {RESULTS_TIMEOUT_S:g} s; stopping")
            finally:
                for t in timers:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        return [f"{r.title}: {progress.results.get(r.job_id, 'no result')}" for r in runs]

    async def _wait_online(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if (
                str(message.topic) == self.topics.state
                and _json(message.payload).get("state") == "online"
            ):
                return

    async def _notice_later(self, client: aiomqtt.Client, run: SiteRun) -> None:
        assert run.dcc_after_s is not None
        await asyncio.sleep(run.dcc_after_s / self.speed)
        now = datetime.now(UTC).replace(microsecond=0)
        notice = {
            "reference": f"DSC-DEMO-{run.job_id}",
            "received_at": now.isoformat().replace("+00:00", "Z"),
            "not_before": (now + timedelta(days=2)).isoformat().replace("+00:00", "Z"),
            "text": "Communications to the devices at this site are not possible (demo).",
            "job_ids": [run.job_id],
        }
        self._say(f"  back office -> {self.topics.dcc_notice}: DCC notice for {run.job_id}")
        await client.publish(self.topics.dcc_notice, json.dumps(notice), qos=1)

    def _show(
        self, topic: str, payload: Any, by_id: dict[str, SiteRun], progress: _Progress
    ) -> None:
        parts = topic[len(self.topics.base) + 1 :].split("/")
        doc = _json(payload)
        if parts[:1] == ["response"]:
            error = doc.get("error")
            if isinstance(error, dict):
                self._say(f"  kit refused {parts[1]}: {error.get('code')}: {error.get('reason')}")
            elif doc.get("job_id") in by_id:
                self._say(f"  kit accepted {doc['job_id']} on hub {doc.get('hub')}")
        elif len(parts) == 3 and parts[0] == "jobs" and parts[1] in by_id:
            job_id = parts[1]
            if parts[2] == "events" and doc.get("kind") not in ("attempt", "verdict"):
                elapsed = float(doc.get("elapsed_s") or 0.0)
                self._say(
                    f"  {elapsed:7.0f}s  {job_id:<22} {doc.get('stage', ''):<10} "
                    f"{doc.get('message', '')}"
                )
            elif parts[2] == "result" and job_id not in progress.results:
                progress.results[job_id] = _verdict_line(doc)
                self._say(f"  VERDICT  {job_id:<22} {_verdict_line(doc, with_next=True)}")

    async def scrape(self, url: str) -> list[str]:
        """The demo's chosen metric samples from ``url``, non-zero ones only."""
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            writer.write(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            await writer.drain()
            async with asyncio.timeout(5):
                body = (await reader.read()).decode("utf-8", "replace")
        finally:
            writer.close()
        lines = body.split("\r\n\r\n", 1)[-1].splitlines()
        return [
            line
            for line in lines
            if line.startswith(SHOWN_METRICS) and not line.endswith((" 0.0", " 0"))
        ]


def _json(payload: Any) -> dict[str, Any]:
    try:
        doc = json.loads(payload) if isinstance(payload, bytes | str) else None
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _verdict_line(result: dict[str, Any], *, with_next: bool = False) -> str:
    """``aborted [UNABLE_TO_ESTABLISH_WAN]``, optionally with the first next action."""
    outcome = str(result.get("outcome"))
    abort = result.get("abort") or {}
    code = f" [{abort.get('code')}]" if abort else ""
    actions = result.get("next_actions") or []
    if not with_next or not actions:
        return f"{outcome}{code}"
    return f"{outcome}{code}\n{'':11}next: {actions[0].get('action')}: {actions[0].get('text')}"
