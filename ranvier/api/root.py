"""GET / and GET /health: is the server up?"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from ranvier import __version__


class RootEndpoints:
    def __init__(
        self, web_client_location: str | None, database_reachable: Callable[[], Awaitable[bool]]
    ) -> None:
        self._web_client_location = web_client_location
        self._database_reachable = database_reachable
        page = resources.files("ranvier.http").joinpath("index.html").read_text()
        self._page = page.replace("{version}", __version__)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.get_root), web.get("/health", self.get_health)]

    async def get_root(self, request: web.Request) -> web.Response:
        """GET /"""
        if self._web_client_location:
            return web.Response(status=302, headers={"Location": self._web_client_location})
        return web.Response(text=self._page, content_type="text/html")

    async def get_health(self, request: web.Request) -> web.Response:
        """GET /health"""
        # a load balancer polls this: without its database the server can answer nothing
        # useful, so it should be taken out of rotation
        if not await self._database_reachable():
            return web.Response(status=503, text="Database unreachable", content_type="text/plain")
        return web.Response(text="OK", content_type="text/plain")
