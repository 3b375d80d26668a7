"""Our room directory for other servers: spec server-server-api "Public Room Directory"
(public_rooms.yaml), served only while `allow_public_rooms_over_federation` is on."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.client.directory import PublicRoomsBody
from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.http.json import json_response, read_body
from ranvier.http.params import query_bool, query_int, query_string
from ranvier.services.rooms.public_rooms import PublicRoomsQuery, PublicRoomsService

PATH = "/_matrix/federation/v1/publicRooms"


class FederationPublicRoomsEndpoints:
    def __init__(self, auth: FederationAuthenticator, public_rooms: PublicRoomsService) -> None:
        self._auth = auth
        self._public_rooms = public_rooms

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.get_public_rooms), web.post(PATH, self.query_public_rooms)]

    async def get_public_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/publicRooms"""
        origin = await self._auth.authenticate(request)
        self._public_rooms.check_federation_access(origin.server_name)
        query = PublicRoomsQuery(
            limit=query_int(request, "limit", 0),
            since=query_string(request, "since"),
            include_all_networks=bool(query_bool(request, "include_all_networks")),
            third_party_instance_id=query_string(request, "third_party_instance_id"),
        )
        page = await self._public_rooms.list_rooms_for_server(origin.server_name, query)
        return json_response(page)

    async def query_public_rooms(self, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/publicRooms"""
        origin = await self._auth.authenticate(request)
        self._public_rooms.check_federation_access(origin.server_name)
        body = await read_body(request, PublicRoomsBody)
        page = await self._public_rooms.list_rooms_for_server(origin.server_name, body.query())
        return json_response(page)
