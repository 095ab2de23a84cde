"""What every serial client shares: a reopening port with a frame decoder on it.

The arrow from serial bytes to frames, for any device protocol. A client (the
Comms Hub's LSP, the ZNP radio's MT) subclasses ``FramedClient`` with its own
push decoder; this class owns the ``SerialLink`` (opened with serialx,
read and written without select(), reopened after an unplug), feeds it every
chunk read, clears the decoder's partial frame whenever the port opens or is
lost, and gives the client the lifecycle its callers use: ``start``, ``wait_connected``,
``stop``, ``async with``. When the port is lost or closed, every call still
waiting on the device fails at once. The client hears of the port only through
three hooks: ``_fail_waiting``, ``_link_up`` and ``_link_down``.
"""

from __future__ import annotations

from typing import Generic, Protocol, Self, TypeVar

from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.serial_link import LinkState, SerialLink, SerialSettings


class Decoder(Protocol):
    """A push parser: bytes in through ``feed``, frames out through its own callback."""

    def feed(self, data: bytes | bytearray | memoryview) -> None: ...

    def reset(self) -> None: ...


D = TypeVar("D", bound=Decoder)


class FramedClient(Generic[D]):
    """A client of one device on ``port``, whose bytes go through ``decoder``.

    ``decoder`` must already call the client back with each frame; it is fed
    from the event loop and must not raise (both decoders catch their own
    handlers' errors).
    """

    def __init__(
        self,
        port: str,
        decoder: D,
        *,
        name: str | None = None,
        settings: SerialSettings | None = None,
        backoff: BackoffSettings | None = None,
        fail_fast_when_busy: bool = False,
    ) -> None:
        self.name = name or port
        self._decoder = decoder
        self._link = SerialLink(
            port,
            name=self.name,
            on_data=decoder.feed,
            on_state=self._on_link_state,
            settings=settings,
            backoff=backoff,
            fail_fast_when_busy=fail_fast_when_busy,
        )
        self._ever_connected = False

    @property
    def port(self) -> str:
        return self._link.path

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def last_link_error(self) -> str | None:
        return self._link.last_error

    async def start(self) -> None:
        """Start keeping the port open (returns at once; see ``wait_connected``)."""
        await self._link.start()

    async def wait_connected(self, timeout_s: float | None = None) -> bool:
        """Wait until the port is open; False when ``timeout_s`` passed first, or, made
        ``fail_fast_when_busy``, as soon as another process is found holding the port."""
        return await self._link.wait_connected(timeout_s)

    async def stop(self) -> None:
        """Close the port for good; whatever still waits on the device fails."""
        await self._link.stop()
        self._fail_waiting("client stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _why_down(self) -> str:
        return self._link.last_error or "port not open yet"

    # --- hooks for the protocol client (called on the event loop; must not raise) ----

    def _link_up(self, reopened: bool) -> None:
        """The port is open; ``reopened`` when it had been open before and was lost."""

    def _link_down(self, reason: str) -> None:
        """The port was lost or closed (waiting calls have failed already)."""

    def _fail_waiting(self, reason: str) -> None:
        """End every call still waiting on the device with the client's disconnect error."""

    def _on_link_state(self, state: LinkState) -> None:
        # Bytes of a frame cut by the loss must never join bytes after the reopen.
        self._decoder.reset()
        if state is LinkState.CONNECTED:
            reopened = self._ever_connected
            self._ever_connected = True
            self._link_up(reopened)
        else:
            reason = self._link.last_error or "port closed"
            self._fail_waiting(reason)
            self._link_down(reason)
