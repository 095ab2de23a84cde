"""What a `gatewayd run` under test shows: its output lines as they come, and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

LOOPBACK = "127.0.0.1"


async def wait_line(lines: Sequence[str], text: str, since: int = 0, timeout: float = 20) -> str:
    """The first line from ``since`` on that contains ``text``, once the output has it."""
    async with asyncio.timeout(timeout):
        while True:
            for line in lines[since:]:
                if text in line:
                    return line
            await asyncio.sleep(0.02)


async def scrape_metrics(port: int) -> tuple[str, str]:
    """One GET /metrics on loopback: the response's head (checked to be 200) and body."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: kit\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK"), head
    return head, body
