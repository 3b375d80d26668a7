"""GET /_synapse/admin/v1/server_version"""

from __future__ import annotations

from aiohttp import web

from ranvier import __version__
from ranvier.http.json import json_response


async def get_server_version(request: web.Request) -> web.Response:
    """GET /_synapse/admin/v1/server_version"""
    return json_response({"server_version": __version__})


def routes() -> list[web.RouteDef]:
    return [web.get("/_synapse/admin/v1/server_version", get_server_version)]
