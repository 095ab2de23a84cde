"""What the installer sees: live progress of a job and a plain verdict with next actions.

Publications, terminal flavour. On a terminal a live panel (rich) shows the
stage, attempt, hub state, elapsed time and signal, with a line per notable
step above it; without a terminal, plain timestamped lines. The verdict block
says what happened and what comes next in words, with the codes alongside for
the back office.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gatewayd.engine.progress import Kind, Progress, Stage
from gatewayd.engine.result import ResultDocument

_STAGE_NAMES = {
    Stage.METER_TYPE: "meter type",
    Stage.HUB: "hub",
    Stage.WAN: "WAN",
    Stage.HAN: "HAN",
    Stage.VERDICT: "verdict",
}

_OUTCOME_WORDS = {
    "commissioned": "COMMISSIONED: the hub reached the DCC and every required device joined",
    "installed_no_wan": "INSTALLED WITHOUT WAN: meters fitted; the hub will be finished remotely",
    "aborted": "ABORTED",
    "cancelled": "CANCELLED",
    "failed": "FAILED: the kit could not complete the checks",
}


def _line(p: Progress) -> str:
    return f"[{p.elapsed_s:7.1f}s] {_STAGE_NAMES[p.stage]:<10} {p.message}"


class PlainView:
    """One line per progress step: for logs, pipes and ``--json`` runs (on stderr)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, p: Progress) -> None:
        self.out.write(_line(p) + "\n")
        self.out.flush()

    def close(self) -> None:
        return None


class LiveView:
    """A live status panel on a terminal, with each step printed above it."""

    def __init__(
        self, console: Console, job_id: str, elapsed: Callable[[], float] | None = None
    ) -> None:
        self.console = console
        self.job_id = job_id
        # Ticks between progress steps, so a long quiet wait still shows time passing.
        self._elapsed_fn = elapsed
        self.stage = "starting"
        self.wan_state = "-"
        self.rssi: int | None = None
        self.attempt: int | None = None
        self.elapsed = 0.0
        self.devices: dict[str, str] = {}
        self._live = Live(
            console=console, refresh_per_second=4, transient=True, get_renderable=self._render
        )
        self._live.start()

    def __call__(self, p: Progress) -> None:
        self.stage = _STAGE_NAMES[p.stage]
        self.elapsed = p.elapsed_s
        if p.wan_state:
            self.wan_state = p.wan_state
        if p.rssi_dbm is not None:
            self.rssi = p.rssi_dbm
        if p.attempt is not None:
            self.attempt = p.attempt
        if p.device and p.kind in (Kind.DEVICE, Kind.ATTEMPT):
            self.devices[p.device] = p.message.replace(f" {p.device}", "")
        if p.kind is not Kind.ATTEMPT or p.stage is Stage.HAN:
            self.console.print(Text(_line(p)))
        self._live.update(self._render())

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        table.add_row("job", self.job_id)
        table.add_row("stage", self.stage)
        elapsed = self._elapsed_fn() if self._elapsed_fn is not None else self.elapsed
        table.add_row("elapsed", f"{elapsed:.0f} s")
        signal = "unknown" if self.rssi is None else f"{self.rssi} dBm"
        table.add_row("WAN", f"{self.wan_state}, signal {signal}")
        if self.attempt is not None:
            table.add_row("attempt", str(self.attempt))
        for eui, status in self.devices.items():
            table.add_row(eui, status)
        return Group(table)

    def pause(self) -> None:
        """Stop redrawing (while the installer answers a prompt)."""
        self._live.stop()

    def resume(self) -> None:
        self._live.start()

    def close(self) -> None:
        self._live.stop()


def render_verdict(doc: ResultDocument, out: TextIO) -> None:
    """The verdict in words, then the next actions (or that nothing is owed)."""
    lines: list[str] = [""]
    outcome = doc.outcome.value
    head = _OUTCOME_WORDS.get(outcome, outcome.upper())
    if doc.abort is not None:
        head = f"ABORTED: {doc.abort.title} [{doc.abort.code.value}]"
    lines.append(f"Job {doc.job_id}: {head}")
    lines.extend(f"  {why}" for why in _reasons(doc))
    if doc.next_actions:
        lines.append("Next:")
        for action in doc.next_actions:
            when = f" (not before {action.not_before.isoformat()})" if action.not_before else ""
            lines.append(f"  - {action.text}{when} [{action.action.value}]")
    else:
        lines.append("Next: nothing is owed for this job.")
    out.write("\n".join(lines) + "\n")
    out.flush()


def _reasons(doc: ResultDocument) -> list[str]:
    why: list[str] = []
    if doc.failure is not None:
        why.append(f"Reason: {doc.failure.reason}")
    if doc.cancellation is not None:
        why.append(f"Cancelled by the {doc.cancellation.by}")
    if doc.dcc_notice is not None:
        why.append("The DCC Service Centre said it cannot communicate with this site's devices.")
    mt = doc.meter_type
    if mt.note is not None:
        why.append(f"Meter type: {mt.note}.")
    if mt.ct:
        why.append("The site is CT metered: no SMETS meter exists for it.")
    elif mt.applicable and not mt.available:
        supply = mt.supply.replace("_", " ") if mt.supply is not None else "this"
        why.append(f"No SMETS meter in the van fits a {supply} supply.")
    if doc.wan is not None:
        if doc.wan.established:
            why.append(f"WAN connected after {doc.wan.time_to_connected_s:.0f} s.")
        else:
            state = doc.wan.final_state or "unknown"
            why.append(
                f"WAN not connected (last state {state}, {doc.wan.reconnects} reconnect(s))."
            )
    if doc.han.probed:
        for d in doc.han.devices:
            if d.joined:
                why.append(f"{d.type} {d.eui64} joined after {d.attempts} window(s).")
            else:
                reason = (d.last_failure or "not joined").replace("_", " ")
                req = "required" if d.required else "optional"
                why.append(f"{d.type} {d.eui64} ({req}) did not join: {reason}.")
                if d.survey_evidence is not None:
                    ev = d.survey_evidence
                    why.append(
                        f"  RF survey there ({ev.source}): the hub is "
                        f"{ev.judgement.replace('_', ' ')}; " + "; ".join(ev.reasons) + "."
                    )
    elif doc.wan is not None and not doc.wan.established:
        why.append("Devices were not added to the HAN: it needs the WAN first.")
    return why
