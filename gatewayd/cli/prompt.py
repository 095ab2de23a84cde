"""Asking the installer a question on the terminal without blocking the event loop.

Publications, terminal flavour: ``gatewayd probe`` gives a job's ``PromptedSurveys`` an ``ask``
callback built here, so the engine never reads stdin or writes the prompt itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

__all__ = ["read_line", "terminal_prompt"]


async def read_line(stream: TextIO) -> str:
    """One line from a terminal without blocking the event loop (and cancellable)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    fd = stream.fileno()

    def ready() -> None:
        if not done.done():
            done.set_result(stream.readline())

    loop.add_reader(fd, ready)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


def terminal_prompt(
    out: TextIO = sys.stdout, inp: TextIO = sys.stdin
) -> Callable[[str], Awaitable[str]]:
    async def ask(text: str) -> str:
        out.write(text)
        out.flush()
        return await read_line(inp)

    return ask
