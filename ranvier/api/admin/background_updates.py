"""Background updates admin API (Synapse's paths, so existing admin tools work)."""

from __future__ import annotations

from aiohttp import web

from ranvier.http.json import json_response
from ranvier.storage.background_updates import BackgroundUpdater


class BackgroundUpdateEndpoints:
    # Accounts arrive with issue 4; until then there is no admin to check, and this
    # endpoint reveals only schema-maintenance progress.
    def __init__(self, updater: BackgroundUpdater) -> None:
        self._updater = updater

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_synapse/admin/v1/background_updates/status", self.get_status)]

    async def get_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/background_updates/status"""
        return json_response(await self._updater.status())
