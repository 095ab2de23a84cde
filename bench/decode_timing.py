"""Shared by the decode benchmarks: time a push decoder over a buffer, and print the result
with the Python version and machine, so every benchmark reports the same way."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol


class Decoder(Protocol):
    def feed(self, data: bytes) -> None: ...


def best_decode_time(
    make_decoder: Callable[[Callable[[Any], None]], Decoder],
    wire: bytes,
    *,
    chunk: int,
    runs: int,
    expected: int,
) -> float:
    """The best of ``runs`` timings of feeding ``wire`` in ``chunk``-byte pieces; exits if a
    run decodes other than ``expected`` frames (a fast wrong decoder measures nothing)."""
    best = float("inf")
    for _ in range(runs):
        count = 0

        def on_frame(_frame: Any) -> None:
            nonlocal count
            count += 1

        decoder = make_decoder(on_frame)
        start = time.perf_counter()
        for i in range(0, len(wire), chunk):
            decoder.feed(wire[i : i + chunk])
        elapsed = time.perf_counter() - start
        if count != expected:
            sys.exit(f"decoded {count} frames, expected {expected}")
        best = min(best, elapsed)
    return best


def report(*, frames: int, wire: bytes, chunk: int, runs: int, best: float, note: str = "") -> None:
    print(f"python   {platform.python_implementation()} {platform.python_version()}")
    machine = f"{platform.machine()} {platform.processor() or ''} {platform.system()}"
    print(f"machine  {' '.join(machine.split())}")
    print(f"input    {frames} frames, {len(wire) / 1e6:.2f} MB, chunks of {chunk} B{note}")
    print(f"best of {runs}: {best * 1e3:.1f} ms")
    print(f"decode   {frames / best:,.0f} frames/s  {len(wire) / best / 1e6:.2f} MB/s")
