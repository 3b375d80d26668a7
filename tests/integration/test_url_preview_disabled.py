"""URL previews left off (the default): the endpoints do not exist, as on Synapse, and
nothing is fetched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.integration.homeserver import RunningServer, free_port
from tests.integration.matrix import authed, register


class Site:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _page(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.Response(content_type="text/html", text="<title>A page</title>")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._page)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Site:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


@pytest.mark.parametrize(
    "path", ["/_matrix/client/v1/media/preview_url", "/_matrix/media/v3/preview_url"]
)
def test_disabled_previews_are_unknown_endpoints(
    server: RunningServer, site: Site, path: str
) -> None:
    session = register(server.url, "carol" + path.split("/")[3])
    url = f"http%3A%2F%2F127.0.0.1%3A{site.port}%2Fpage"
    reply = authed(session, "GET", f"{server.url}{path}?url={url}")
    assert (reply.status, reply.errcode) == (404, "M_UNRECOGNIZED")
    assert site.requests == []
