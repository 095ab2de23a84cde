"""The ``/metrics`` endpoint, served from the daemon's own asyncio event loop.

prometheus_client's own servers run in a thread, which keeps answering while the
daemon's loop is stuck; serving from the loop means a hung daemon shows up as a failed
scrape, which is what an operator's "kit down" alert should see. The HTTP needed here
is tiny (one GET, no keep-alive), so it is a few lines over ``asyncio.start_server``
rather than a web framework. TLS is optional; the default address is loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["MetricsServer", "MetricsServerError"]

_log = logging.getLogger(__name__)

# A scrape request is one line and a few headers; anything bigger or slower is not Prometheus.
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 5.0


class MetricsServerError(RuntimeError):
    """The endpoint could not start (address in use, unreadable certificate...)."""


class MetricsServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self._tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
        self._server: asyncio.Server | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._tls else "http"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.bound_port}/metrics"

    @property
    def bound_port(self) -> int:
        """The port actually listened on (differs from ``port`` when that was 0)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def start(self) -> None:
        context = None
        if self._tls is not None:
            cert, key = self._tls
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise MetricsServerError(
                    f"metrics.tls_cert/tls_key: cannot load {cert} and {key}: {exc}"
                ) from None
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, ssl=context, limit=MAX_REQUEST_BYTES
            )
        except OSError as exc:
            raise MetricsServerError(
                f"metrics.listen: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        _log.info("metrics endpoint listening url=%s", self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, headers, body = self._respond(head)
            send_body = not head.startswith(b"HEAD ")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, headers, body = "400 Bad Request", {"Content-Type": "text/plain"}, b""
            send_body = True
        except (ConnectionError, ssl.SSLError):
            writer.close()
            return
        try:
            lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(
                ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body if send_body else b"")
            )
            await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _respond(self, head: bytes) -> tuple[str, dict[str, str], bytes]:
        text = head.decode("latin-1")
        request_line, _, rest = text.partition("\r\n")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "400 Bad Request", {"Content-Type": "text/plain"}, b"bad request line\n"
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", {"Allow": "GET, HEAD"}, b""
        if path == "/":
            page = b'<html><body><a href="/metrics">gatewayd metrics</a></body></html>\n'
            return "200 OK", {"Content-Type": "text/html; charset=utf-8"}, page
        if path != "/metrics":
            return "404 Not Found", {"Content-Type": "text/plain"}, b"try /metrics\n"
        accept = ""
        for line in rest.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        encoder, content_type = choose_encoder(accept)
        return "200 OK", {"Content-Type": content_type}, encoder(self.registry)
