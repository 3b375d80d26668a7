"""Federation queries: spec server-server-api "Querying for information" (query.yaml).

Every query is a signed request; profile and directory are the two this server answers, any
other query type is 404 M_NOT_FOUND (as Synapse answers a type it has no handler for).
"""

from __future__ import annotations

from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.http.params import query_string, required_query_string
from ranvier.services.profiles import ProfileService
from ranvier.services.rooms.aliases import AliasService

PREFIX = "/_matrix/federation/v1/query"


class FederationQueryEndpoints:
    def __init__(
        self, auth: FederationAuthenticator, profiles: ProfileService, aliases: AliasService
    ) -> None:
        self._auth = auth
        self._profiles = profiles
        self._aliases = aliases

    def routes(self) -> list[web.RouteDef]:
        # the named queries before the generic one, which would match them too
        return [
            web.get(f"{PREFIX}/profile", self.query_profile),
            web.get(f"{PREFIX}/directory", self.query_directory),
            web.get(f"{PREFIX}/{{queryType}}", self.query_other),
        ]

    async def query_profile(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/profile"""
        await self._auth.authenticate(request)
        user_id = required_query_string(request, "user_id")
        field = query_string(request, "field")
        return json_response(await self._profiles.federation_query(user_id, field))

    async def query_directory(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/directory"""
        await self._auth.authenticate(request)
        alias = required_query_string(request, "room_alias")
        room_id, servers = await self._aliases.federation_query(alias)
        return json_response({"room_id": room_id, "servers": servers})

    async def query_other(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/{queryType}"""
        await self._auth.authenticate(request)
        query_type = request.match_info["queryType"]
        raise MatrixError(404, "M_NOT_FOUND", f"No handler for query type {query_type!r}")
