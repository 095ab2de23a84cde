"""Decoding, side by side: our MT decoder against zigpy-znp's, and our LSP decoder alone.

zigpy-znp (a test-only dependency) is fed the same bytes in the same chunks through
``ZnpMtProtocol.data_received``, the path its serial transport takes, so both sides find
the frames and check the FCS. The LSP has no public peer decoder; its figure is ours
alone, kept so that a change to the framing or the CRC shows.

Run: python -m bench.decode [--frames N] [--repeats N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.lsp_decode import mixed_frames as lsp_frames
from bench.report import Row, Target, table
from bench.znp_decode import mixed_frames as mt_frames
from gatewayd_drivers.commshub import framing
from gatewayd_drivers.znp import frames as mt

CHUNK = 4096


class _Count:
    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, _frame: Any) -> None:
        self.frames += 1

    frame_received = __call__  # zigpy-znp's API hook


def _feed_ours(make: Callable[[Callable[[Any], None]], Any], wire: bytes) -> int:
    count = _Count()
    decoder = make(count)
    for i in range(0, len(wire), CHUNK):
        decoder.feed(wire[i : i + CHUNK])
    return count.frames


def _feed_zigpy(wire: bytes) -> int:
    from zigpy_znp.uart import ZnpMtProtocol

    count = _Count()
    protocol = ZnpMtProtocol(count)
    for i in range(0, len(wire), CHUNK):
        protocol.data_received(wire[i : i + CHUNK])
    return count.frames


def _rate(feed: Callable[[], int], expected: int) -> float:
    start = time.perf_counter()
    got = feed()
    elapsed = time.perf_counter() - start
    if got != expected:
        raise RuntimeError(f"decoded {got} frames, expected {expected}")
    return expected / elapsed


def mt_rates(frames: int, repeats: int) -> tuple[list[float], list[float]]:
    wire = b"".join(mt.encode_frame(f) for f in mt_frames(frames, random.Random(42)))
    ours: list[float] = []
    theirs: list[float] = []
    for rep in range(repeats):
        sides = [
            (ours, lambda: _feed_ours(mt.FrameDecoder, wire)),
            (theirs, lambda: _feed_zigpy(wire)),
        ]
        for out, feed in sides if rep % 2 == 0 else sides[::-1]:
            out.append(_rate(feed, frames))
    return ours, theirs


def lsp_rates(frames: int, repeats: int) -> list[float]:
    wire = b"".join(framing.encode_frame(f) for f in lsp_frames(frames, random.Random(42)))
    return [_rate(lambda: _feed_ours(framing.FrameDecoder, wire), frames) for _ in range(repeats)]


def rows(frames: int, repeats: int) -> list[Row]:
    ours, theirs = mt_rates(frames, repeats)
    lsp = lsp_rates(frames, repeats)
    return [
        Row("MT (ZNP) decode", f"{statistics.median(ours):,.0f} frames/s",
            f"zigpy-znp: {statistics.median(theirs):,.0f} frames/s",
            [a / b for a, b in zip(ours, theirs, strict=True)], Target(3.0, at_most=False)),
        Row("LSP decode", f"{statistics.median(lsp):,.0f} frames/s", "—", []),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(table(rows(args.frames, args.repeats)))


if __name__ == "__main__":
    main()
