"""GET /_matrix/federation/v1/version"""

from __future__ import annotations

from aiohttp import web

from ranvier import __version__
from ranvier.http.json import json_response


async def get_version(request: web.Request) -> web.Response:
    """GET /_matrix/federation/v1/version"""
    return json_response({"server": {"name": "Ranvier", "version": __version__}})


def routes() -> list[web.RouteDef]:
    return [web.get("/_matrix/federation/v1/version", get_version)]
