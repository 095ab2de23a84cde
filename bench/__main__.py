"""Every comparison of the performance targets, with one command, written to docs/benchmarks.md.

Run: python -m bench            (the full run: 1 to 1,024 hubs, takes about half an hour)
     python -m bench --quick    (small counts, one repetition: CI runs it so it never rots)
     python -m bench --only latency drain

Each section runs gatewayd and its peer in the same run, alternating, repeated, and reports
min / median / max of the ratio per repetition. Targets are printed as met or missed; the
command never fails on a missed target (a busy machine is not a regression), only when a
benchmark cannot run at all.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import decode, hub_latency, outbox_drain, startup
from bench.report import Row, Target, figures_section, table, write_document

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Sizes:
    hubs: Sequence[int]
    seconds: float
    repeats: int
    drain_messages: int
    decode_frames: int
    startup_repeats: int


FULL = Sizes(hubs=(1, 64, 256, 1024), seconds=20.0, repeats=3, drain_messages=5000,
             decode_frames=100_000, startup_repeats=15)  # fmt: skip
QUICK = Sizes(hubs=(1, 4), seconds=5.0, repeats=1, drain_messages=200, decode_frames=2000,
              startup_repeats=1)  # fmt: skip


def latency_rows(sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    for c in hub_latency.run(sizes.hubs, sizes.seconds, sizes.repeats):
        n = c.hubs
        g_sent = sum(g.sent for g, _ in c.runs)
        g_got = sum(g.delivered for g, _ in c.runs)
        f_sent = sum(f.sent for _, f in c.runs)
        f_got = sum(f.delivered for _, f in c.runs)
        rows.append(
            Row(f"{n} hubs: events delivered", f"{g_got:,} of {g_sent:,}",
                f"{f_got:,} of {f_sent:,}", [], check=c.all_delivered())
        )  # fmt: skip
        p50 = Target(1.5) if n <= 64 else None
        rows.append(
            Row(f"{n} hubs: event → MQTT p50", f"{c.medians(0, 'p50_ms'):.2f} ms",
                f"{c.medians(1, 'p50_ms'):.2f} ms", c.ratios("p50_ms"), p50)
        )  # fmt: skip
        heavy = n >= 256
        rows.append(
            Row(f"{n} hubs: event → MQTT p99", f"{c.medians(0, 'p99_ms'):.2f} ms",
                f"{c.medians(1, 'p99_ms'):.2f} ms", c.ratios("p99_ms"),
                Target(3.0) if heavy else None)
        )  # fmt: skip
        rows.append(
            Row(f"{n} hubs: CPU per second of load", f"{c.medians(0, 'cpu_pct'):.1f} %",
                f"{c.medians(1, 'cpu_pct'):.1f} %", c.ratios("cpu_pct"),
                Target(2.0) if heavy else None)
        )  # fmt: skip
        rss = c.medians(0, "rss_mb")
        rows.append(
            Row(f"{n} hubs: resident memory", f"{rss:.0f} MB", f"{c.medians(1, 'rss_mb'):.0f} MB",
                c.ratios("rss_mb"), check=(rss <= 150) if n >= 1024 else None,
                note="target ≤ 150 MB" if n >= 1024 else "")
        )  # fmt: skip
    return rows


def decode_rows(sizes: Sizes) -> list[Row]:
    return decode.rows(frames=sizes.decode_frames, repeats=max(3, sizes.repeats))


def startup_rows(sizes: Sizes) -> list[Row]:
    figures = startup.run(sizes.startup_repeats)
    s = figures["summary"]
    return [
        Row("start to ready (READY=1)", f"{s['start_to_ready_s']['median']:.3f} s",
            f"importing {', '.join(figures['floor_modules'])}: "
            f"{s['import_floor_s']['median']:.3f} s",
            figures["ratio"], Target(figures["target_ratio"]))
    ]  # fmt: skip


def drain_rows(sizes: Sizes) -> list[Row]:
    f = outbox_drain.run(sizes.drain_messages, max(3, sizes.repeats))
    to_aiomqtt = [g / a for g, a in zip(f["gatewayd_msg_s"], f["aiomqtt_msg_s"], strict=True)]
    return [
        Row("outbox drain", f"{f['gatewayd']['median']:,.0f} msg/s",
            f"paho-mqtt, {outbox_drain.PAHO_IN_FLIGHT} in flight: {f['paho']['median']:,.0f} msg/s",
            [g / p for g, p in zip(f["gatewayd_msg_s"], f["paho_msg_s"], strict=True)],
            Target(0.8, at_most=False),
            note=f"{f['messages']:,} messages of {f['payload_bytes']} B"),
        Row("outbox drain, against bare aiomqtt", f"{f['gatewayd']['median']:,.0f} msg/s",
            f"aiomqtt, nothing stored: {f['aiomqtt']['median']:,.0f} msg/s", to_aiomqtt),
    ]  # fmt: skip


SECTIONS: dict[str, Callable[[Sizes], list[Row]]] = {
    "decode": decode_rows,
    "drain": drain_rows,
    "latency": latency_rows,
    "startup": startup_rows,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repetition")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="these sections")
    parser.add_argument("--out", type=Path, default=DOC, help=f"default: {DOC.name} in docs/")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows: list[Row] = []
    for name in args.only or SECTIONS:
        print(f"== {name}", file=sys.stderr, flush=True)
        rows += SECTIONS[name](sizes)
    print(table(rows))
    if not args.no_write:
        command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
        notes = [
            "gatewayd ÷ peer per repetition; lower is better for times, CPU and memory, higher "
            "for rates. The target applies to the median.",
        ]
        write_document(args.out, figures_section(rows, command.strip(), notes))
        print(f"written: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
