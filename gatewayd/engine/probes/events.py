"""Hub events fed to a probe while it runs: one subscription, one reader task, cleaned up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from gatewayd_drivers.commshub.client import ClientEvent, EventSubscription, HubClient


@contextlib.asynccontextmanager
async def watching(hub: HubClient, on_event: Callable[[ClientEvent], None]) -> AsyncIterator[None]:
    """Call ``on_event`` for every hub event and link change until the block ends."""
    events = hub.events()
    reader = asyncio.create_task(_read(events, on_event))
    try:
        yield
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        events.close()


async def _read(events: EventSubscription, on_event: Callable[[ClientEvent], None]) -> None:
    async for event in events:
        on_event(event)
