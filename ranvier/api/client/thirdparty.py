"""Third-party networks: spec third_party_lookup.yaml (GET /thirdparty/protocols,
/thirdparty/protocol/{protocol}, /thirdparty/location[/{protocol}],
/thirdparty/user[/{protocol}])."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.services.thirdparty import EntityKind, ThirdPartyLookup

V3 = "/_matrix/client/v3/thirdparty"


class ThirdPartyEndpoints:
    def __init__(self, auth: RequestAuthenticator, lookup: ThirdPartyLookup) -> None:
        self._auth = auth
        self._lookup = lookup

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(V3 + "/protocols", self.get_protocols),
            web.get(V3 + "/protocol/{protocol}", self.get_protocol),
            web.get(V3 + "/location", self.get_locations),
            web.get(V3 + "/location/{protocol}", self.get_locations),
            web.get(V3 + "/user", self.get_users),
            web.get(V3 + "/user/{protocol}", self.get_users),
        ]

    async def get_protocols(self, request: web.Request) -> web.Response:
        # as Synapse: guests may ask too
        await self._auth.require_user(request, allow_guest=True)
        return json_response(await self._lookup.protocols())

    async def get_protocol(self, request: web.Request) -> web.Response:
        await self._auth.require_user(request, allow_guest=True)
        metadata = await self._lookup.protocol(request.match_info["protocol"])
        if metadata is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown protocol")
        return json_response(metadata)

    async def get_locations(self, request: web.Request) -> web.Response:
        return await self._query(request, "location")

    async def get_users(self, request: web.Request) -> web.Response:
        return await self._query(request, "user")

    async def _query(self, request: web.Request, kind: EntityKind) -> web.Response:
        await self._auth.require_user(request, allow_guest=True)
        # every query parameter is a search field of the protocol's, but the token
        fields = {
            name: request.query.getall(name) for name in request.query if name != "access_token"
        }
        found = await self._lookup.query(kind, request.match_info.get("protocol"), fields)
        if not found:
            # spec: 404 when nothing was found (Synapse answers an empty list)
            raise MatrixError(404, "M_NOT_FOUND", f"No third-party {kind} was found")
        return json_response(found)
