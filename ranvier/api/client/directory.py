"""Room aliases and the published room directory: spec client-server-api "Room aliases"
(directory.yaml) and "Published room directory" (list_public_rooms.yaml)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import query_bool, query_int, query_string
from ranvier.services.appservice.room_list import AppServiceRoomList
from ranvier.services.rooms.aliases import AliasService
from ranvier.services.rooms.public_rooms import PublicRoomsQuery, PublicRoomsService

CLIENT = "/_matrix/client/v3"


class _AliasBody(RequestBody):
    room_id: str


class _PublicRoomsFilter(RequestBody):
    generic_search_term: str | None = None
    room_types: list[str | None] | None = None


class PublicRoomsBody(RequestBody):
    """POST /publicRooms, from a client or (without `server`) from another server."""

    limit: int | None = Field(default=None, ge=0)
    since: str | None = None
    filter: _PublicRoomsFilter = Field(default_factory=_PublicRoomsFilter)
    include_all_networks: bool = False
    third_party_instance_id: str | None = None

    def query(self, server: str | None = None) -> PublicRoomsQuery:
        return PublicRoomsQuery(
            limit=self.limit,
            since=self.since,
            generic_search_term=self.filter.generic_search_term,
            room_types=self.filter.room_types,
            include_all_networks=self.include_all_networks,
            third_party_instance_id=self.third_party_instance_id,
            server=server,
        )


class _VisibilityBody(RequestBody):
    visibility: Literal["public", "private"] = "public"


class AliasEndpoints:
    def __init__(self, auth: RequestAuthenticator, aliases: AliasService) -> None:
        self._auth = auth
        self._aliases = aliases

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put(CLIENT + "/directory/room/{roomAlias}", self.set_alias),
            web.get(CLIENT + "/directory/room/{roomAlias}", self.get_alias),
            web.delete(CLIENT + "/directory/room/{roomAlias}", self.delete_alias),
            web.get(CLIENT + "/rooms/{roomId}/aliases", self.local_aliases),
        ]

    async def set_alias(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/room/{roomAlias}"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _AliasBody)
        await self._aliases.create(requester, request.match_info["roomAlias"], body.room_id)
        return json_response({})

    async def get_alias(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/directory/room/{roomAlias}"""
        room_id, servers = await self._aliases.resolve(request.match_info["roomAlias"])
        return json_response({"room_id": room_id, "servers": servers})

    async def delete_alias(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/directory/room/{roomAlias}"""
        requester = await self._auth.require_user(request)
        await self._aliases.delete(requester, request.match_info["roomAlias"])
        return json_response({})

    async def local_aliases(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/aliases"""
        requester = await self._auth.require_user(request)
        aliases = await self._aliases.local_aliases(requester, request.match_info["roomId"])
        return json_response({"aliases": aliases})


class RoomDirectoryEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        public_rooms: PublicRoomsService,
        network_lists: AppServiceRoomList,
        *,
        allow_public_rooms_without_auth: bool,
    ) -> None:
        self._auth = auth
        self._public_rooms = public_rooms
        self._network_lists = network_lists
        self._allow_without_auth = allow_public_rooms_without_auth

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(CLIENT + "/directory/list/room/{roomId}", self.get_visibility),
            web.put(CLIENT + "/directory/list/room/{roomId}", self.set_visibility),
            web.put(
                CLIENT + "/directory/list/appservice/{networkId}/{roomId}",
                self.set_network_visibility,
            ),
            # not in the spec, but Synapse serves it and SyTest and bridges call it: unlisting
            web.delete(
                CLIENT + "/directory/list/appservice/{networkId}/{roomId}",
                self.unlist_from_network,
            ),
            web.get(CLIENT + "/publicRooms", self.get_public_rooms),
            web.post(CLIENT + "/publicRooms", self.query_public_rooms),
        ]

    async def get_visibility(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/directory/list/room/{roomId}"""
        visibility = await self._public_rooms.get_visibility(request.match_info["roomId"])
        return json_response({"visibility": visibility})

    async def set_visibility(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/list/room/{roomId}"""
        requester = await self._auth.require_user(request)
        # M_INVALID_PARAM, as before bodies were parsed into models, and as Synapse answers
        body = await read_body(request, _VisibilityBody, bad_value="M_INVALID_PARAM")
        visibility = body.visibility
        await self._public_rooms.set_visibility(requester, request.match_info["roomId"], visibility)
        return json_response({})

    async def set_network_visibility(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _VisibilityBody, bad_value="M_INVALID_PARAM")
        await self._network_lists.set_visibility(
            requester,
            request.match_info["networkId"],
            request.match_info["roomId"],
            body.visibility,
        )
        return json_response({})

    async def unlist_from_network(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}"""
        requester = await self._auth.require_user(request)
        await self._network_lists.set_visibility(
            requester, request.match_info["networkId"], request.match_info["roomId"], "private"
        )
        return json_response({})

    async def get_public_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/publicRooms"""
        if not self._allow_without_auth:
            await self._auth.require_user(request, allow_guest=True)
        page = await self._public_rooms.list_rooms(
            PublicRoomsQuery(
                limit=query_int(request, "limit", 0),
                since=query_string(request, "since"),
                server=query_string(request, "server"),
                # not in the spec's GET, but Synapse reads them there too
                include_all_networks=query_bool(request, "include_all_networks") is True,
                third_party_instance_id=query_string(request, "third_party_instance_id"),
            )
        )
        return json_response(page)

    async def query_public_rooms(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/publicRooms"""
        await self._auth.require_user(request, allow_guest=True)
        body = await read_body(request, PublicRoomsBody)
        page = await self._public_rooms.list_rooms(body.query(query_string(request, "server")))
        return json_response(page)
