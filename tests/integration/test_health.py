"""GET /health follows the database: 503 while PostgreSQL cannot be reached, 200 again once
it can; requests that need the database meanwhile answer 503 with Retry-After, not 500.

The server reaches PostgreSQL through a TCP proxy that the test runs and cuts, as a network
failure or a database restart would; the shared PostgreSQL server itself is left alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from ranvier.storage.testing import (
    create_postgres_database,
    drop_postgres_database,
    postgres_database_config,
)
from tests.conftest import postgres_unavailable
from tests.integration.client import Reply, request
from tests.integration.homeserver import free_port, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, authed, register

pytestmark = pytest.mark.postgres


class TcpProxy:
    """Forwards a loopback port to PostgreSQL from a thread of its own, until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> None:
        self._run(self._start())

    def cut(self) -> None:
        """Stop listening and drop every connection made through the proxy."""
        self._run(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def postgres_through_proxy(postgres_server: str) -> Iterator[tuple[dict[str, Any], TcpProxy]]:
    url = urlparse(postgres_server)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        name = asyncio.run(create_postgres_database(postgres_server))
    except Exception as exc:  # pragma: no cover - postgres_server checked it is there
        proxy.close()
        postgres_unavailable(str(exc))
        raise
    config = postgres_database_config(name, postgres_server).model_dump()
    config["args"].update(host="127.0.0.1", port=proxy.port)
    try:
        yield config, proxy
    finally:
        proxy.close()
        asyncio.run(drop_postgres_database(name, postgres_server))


def _health(url: str) -> Reply:
    return request("GET", url + "/health")


def _wait_for_health(url: str, status: int, within: float = 10.0) -> Reply:
    deadline = time.monotonic() + within
    while True:
        reply = _health(url)
        if reply.status == status or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def test_health_and_requests_follow_the_database(
    tmp_path: Path, postgres_through_proxy: tuple[dict[str, Any], TcpProxy]
) -> None:
    database, proxy = postgres_through_proxy
    with serving(tmp_path, database, **REGISTRATION_CONFIG) as server:
        alice = register(server.url, "alice")
        healthy = _health(server.url)
        assert (healthy.status, healthy.body) == (200, b"OK")

        proxy.cut()
        down = _wait_for_health(server.url, 503)
        assert down.status == 503, down.body
        # a request that needs the database is refused for now, not failed
        sync = authed(alice, "GET", server.url + CLIENT + "/sync")
        assert (sync.status, sync.errcode) == (503, "M_UNKNOWN"), sync.body
        assert int(sync.headers["Retry-After"]) > 0

        proxy.start()
        up = _wait_for_health(server.url, 200)
        assert (up.status, up.body) == (200, b"OK")
        assert authed(alice, "GET", server.url + CLIENT + "/sync").status == 200
