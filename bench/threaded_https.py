"""An aiohttp handler served over TLS (or plain HTTP, with no context) on its own event
loop, in a daemon thread: the scripted remote servers that benchmarks (remote_room.py) and
tests (tests/federation/fake_server.py, tests/appservice/fake_appservice.py) drive from
synchronous code."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThreadedHttpsServer:
    def __init__(
        self,
        handler: Handler,
        context: ssl.SSLContext | None,
        sock: socket.socket,
        name: str,
        *,
        client_max_size: int = 1024**2,
    ) -> None:
        """Serve `handler` for every path on `sock` (bound, not yet listening)."""
        self._handler = handler
        self._context = context
        self._socket = sock
        self._name = name
        self._client_max_size = client_max_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()

        async def serve() -> None:
            app = web.Application(client_max_size=self._client_max_size)
            app.router.add_route("*", "/{tail:.*}", self._handler)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, self._socket, ssl_context=self._context).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{self._name} did not start")

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None


def bound_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to 127.0.0.1:`port` (0: any free port)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
