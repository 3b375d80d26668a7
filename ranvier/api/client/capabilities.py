"""Capabilities: spec client-server-api "Capabilities negotiation" (capabilities.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.config.models import HomeserverConfig
from ranvier.http.json import json_response
from ranvier.services.capabilities import capabilities


class CapabilitiesEndpoints:
    def __init__(self, auth: RequestAuthenticator, config: HomeserverConfig) -> None:
        self._auth = auth
        # the configuration cannot change while the process runs: render once
        self._body = {"capabilities": capabilities(config)}
        # spec v1.18: admins are told they may suspend and lock accounts
        # (/_matrix/client/v1/admin/{suspend,lock}); others are told nothing
        self._admin_body = {
            "capabilities": {
                **capabilities(config),
                "m.account_moderation": {"suspend": True, "lock": True},
            }
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/_matrix/client/v3/capabilities", self.get_capabilities)]

    async def get_capabilities(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/capabilities"""
        requester = await self._auth.require_user(request, allow_guest=True)
        if requester.is_admin:
            return json_response(self._admin_body)
        return json_response(self._body)
