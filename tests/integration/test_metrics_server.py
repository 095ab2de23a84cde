"""The /metrics endpoint over real sockets: the exposition formats, TLS, bad requests, and
the property the fleet relies on — it is served by the daemon's event loop, so a hung loop
is a failed scrape."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gatewayd.daemon.metrics import Metrics
from gatewayd.daemon.metrics_server import MetricsServer, MetricsServerError
from tests.mqtt_broker import make_tls_files


async def request(
    server: MetricsServer, raw: bytes, *, tls: ssl.SSLContext | None = None
) -> tuple[str, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.bound_port, ssl=tls, server_hostname="127.0.0.1" if tls else None
    )
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@contextlib.asynccontextmanager
async def serving(**tls: Path) -> AsyncIterator[MetricsServer]:
    server = MetricsServer(Metrics().registry, "127.0.0.1", 0, **tls)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_text_format_by_default_and_openmetrics_on_request() -> None:
    async with serving() as server:
        assert server.url == f"http://127.0.0.1:{server.bound_port}/metrics"
        status, headers, body = await request(server, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body)
        assert b'gatewayd_jobs_total{outcome="commissioned"} 0.0' in body
        status, headers, body = await request(
            server,
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
        )
        assert headers["content-type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith(b"# EOF")


async def test_head_other_paths_methods_and_garbage() -> None:
    async with serving() as server:
        status, headers, body = await request(server, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and body == b""
        assert int(headers["content-length"]) > 0
        status, _, _ = await request(server, b"GET /nope HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 404 Not Found"
        status, headers, _ = await request(server, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 405 Method Not Allowed" and headers["allow"] == "GET, HEAD"
        status, _, _ = await request(server, b"\x16\x03\x01 garbage\r\n\r\n")
        assert status == "HTTP/1.1 400 Bad Request"
        status, _, _ = await request(server, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 400 Bad Request"
        # And it still serves after all that.
        status, _, _ = await request(server, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"


async def test_a_silent_client_does_not_hold_up_a_scrape() -> None:
    async with serving() as server:
        _, idle = await asyncio.open_connection("127.0.0.1", server.bound_port)
        try:
            status, _, _ = await request(server, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert status == "HTTP/1.1 200 OK"
        finally:
            idle.close()


async def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    files, _, _ = make_tls_files(tmp_path)
    async with serving(tls_cert=files.cert, tls_key=files.key) as server:
        assert server.url.startswith("https://")
        client = ssl.create_default_context(cafile=str(files.ca))
        status, _, body = await request(server, b"GET /metrics HTTP/1.1\r\n\r\n", tls=client)
        assert status == "HTTP/1.1 200 OK" and b"gatewayd_build_info" in body
        # Plain HTTP to the TLS port gets no metrics.
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            _, _, body = await request(server, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert b"gatewayd_build_info" not in body


async def test_start_errors_name_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(Metrics().registry, "127.0.0.1", port)
        with pytest.raises(MetricsServerError, match=rf"metrics.listen: .*127.0.0.1:{port}"):
            await server.start()
    bad = MetricsServer(
        Metrics().registry,
        "127.0.0.1",
        0,
        tls_cert=tmp_path / "missing.pem",
        tls_key=tmp_path / "missing.key",
    )
    with pytest.raises(MetricsServerError, match=r"metrics\.tls_cert/tls_key: cannot load"):
        await bad.start()


@pytest.fixture
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def scrape_blocking(port: int, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_hung_event_loop_is_a_failed_scrape(loop_in_thread: asyncio.AbstractEventLoop) -> None:
    server = MetricsServer(Metrics().registry, "127.0.0.1", 0)
    asyncio.run_coroutine_threadsafe(server.start(), loop_in_thread).result(5)
    assert scrape_blocking(server.bound_port, 5).startswith(b"HTTP/1.1 200 OK")
    # The daemon's loop stops answering (a blocking call, a stuck driver...).
    hung, back = threading.Event(), threading.Event()

    def hang() -> None:
        hung.set()
        time.sleep(1.5)  # the hang itself is the thing under test

    loop_in_thread.call_soon_threadsafe(hang)
    loop_in_thread.call_soon_threadsafe(back.set)  # runs only once the hang is over
    assert hung.wait(5)
    with pytest.raises(TimeoutError):
        scrape_blocking(server.bound_port, 0.5)
    assert back.wait(5)  # the loop is back: so are the scrapes
    assert scrape_blocking(server.bound_port, 5).startswith(b"HTTP/1.1 200 OK")
    asyncio.run_coroutine_threadsafe(server.stop(), loop_in_thread).result(5)
