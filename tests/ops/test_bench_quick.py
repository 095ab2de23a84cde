"""The benchmarks still run: ``python -m bench --quick``, every section, small counts.

No target is enforced here (a CI machine is shared, and a ratio from one short repetition
says little); what is checked is that every comparison ran both of its sides, that no event
of the latency run was lost on either side, and that the document it writes keeps the
hand-written text around its figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.report import BEGIN, END

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_bench_runs_every_section_and_writes_its_figures(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nwritten by hand\n\n{BEGIN}\nold figures\n{END}\n\ntail\n")
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(doc)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nwritten by hand\n") and text.endswith("\ntail\n")
    assert "old figures" not in text
    for figure in (
        "MT (ZNP) decode",
        "LSP decode",
        "1 hubs: event → MQTT p50",
        "4 hubs: event → MQTT p99",
        "start to ready",
        "outbox drain",
    ):
        assert f"| {figure}" in text, f"no row for {figure!r}:\n{text}"
    delivered = re.findall(
        r"\| \d+ hubs: events delivered \| ([\d,]+) of ([\d,]+) \| ([\d,]+) of ([\d,]+) \|", text
    )
    assert len(delivered) == 2, text
    for got, sent, floor_got, floor_sent in delivered:
        assert got == sent and floor_got == floor_sent and int(sent.replace(",", "")) > 0
