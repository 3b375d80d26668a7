"""GET / and GET /health: is the server up?"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from ranvier import __version__


class RootEndpoints:
    def __init__(self, web_client_location: str | None) -> None:
        self._web_client_location = web_client_location
        page = resources.files("ranvier.http").joinpath("index.html").read_text()
        self._page = page.replace("{version}", __version__)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.get_root), web.get("/health", get_health)]

    async def get_root(self, request: web.Request) -> web.Response:
        """GET /"""
        if self._web_client_location:
            return web.Response(status=302, headers={"Location": self._web_client_location})
        return web.Response(text=self._page, content_type="text/html")


async def get_health(request: web.Request) -> web.Response:
    """GET /health"""
    return web.Response(text="OK", content_type="text/plain")
