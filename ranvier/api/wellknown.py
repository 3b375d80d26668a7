"""Server discovery: /.well-known/matrix/client, /.well-known/matrix/server and
/.well-known/matrix/support."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.http.json import json_response


class WellKnownEndpoints:
    def __init__(self, config: HomeserverConfig) -> None:
        self._client = well_known_client(config)
        self._server = well_known_server(config)
        self._support = well_known_support(config)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/.well-known/matrix/client", self.get_client),
            web.get("/.well-known/matrix/server", self.get_server),
            web.get("/.well-known/matrix/support", self.get_support),
        ]

    async def get_client(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/client"""
        if self._client is None:
            raise MatrixError(
                404,
                "M_NOT_FOUND",
                "No client discovery information: public_baseurl is not configured",
            )
        return json_response(self._client)

    async def get_server(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/server"""
        if self._server is None:
            raise MatrixError(404, "M_NOT_FOUND", "Server delegation is not configured")
        return json_response(self._server)

    async def get_support(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/support"""
        if self._support is None:
            # spec: 404 when the server has no support information to give
            raise MatrixError(404, "M_NOT_FOUND", "No support information is configured")
        return json_response(self._support)


def well_known_client(config: HomeserverConfig) -> dict[str, Any] | None:
    """As Synapse: served only once public_baseurl says where clients should go."""
    if config.public_baseurl is None:
        return None
    content: dict[str, Any] = dict(config.extra_well_known_client_content)
    content["m.homeserver"] = {"base_url": config.public_baseurl}
    return content


def well_known_server(config: HomeserverConfig) -> dict[str, Any] | None:
    """Delegates federation to public_baseurl's host (port 443 unless it names one)."""
    if not config.serve_server_wellknown:
        return None
    parsed = urlparse(config.effective_public_baseurl)
    return {"m.server": f"{parsed.hostname}:{parsed.port or 443}"}


def well_known_support(config: HomeserverConfig) -> dict[str, Any] | None:
    """`well_known_support` as the spec's document (absent fields left out)."""
    support = config.well_known_support
    if support is None:
        return None
    content: dict[str, Any] = {}
    if support.contacts:
        content["contacts"] = [
            contact.model_dump(exclude_none=True) for contact in support.contacts
        ]
    if support.support_page is not None:
        content["support_page"] = support.support_page
    return content
