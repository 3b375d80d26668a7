"""Room admin API (Synapse's paths, parameters and shapes, so admin tools work): the room
list, details, members, state, blocking, and the Delete Room API with its status."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import invalid_param, query_bool, query_choice, query_int
from ranvier.protocol.power_levels import is_valid_user_id
from ranvier.services.rooms.admin import RoomAdminService
from ranvier.services.rooms.deletion import DeleteRoomRequest, RoomDeletionService
from ranvier.storage.room_admin import ROOM_ORDER_BY_VALUES, RoomListQuery

ADMIN = "/_synapse/admin"
# Synapse's deprecated names for two of the orders
_ORDER_BY_ALIASES = {"alphabetical": "name", "size": "joined_members"}


class _BlockBody(RequestBody):
    block: bool


class _DeleteRoomBody(RequestBody):
    new_room_user_id: str | None = None
    room_name: str | None = None
    message: str | None = None
    block: bool = False
    purge: bool = True
    force_purge: bool = False


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    # spec: appendices "Room IDs" - "!" and an opaque part (v12 rooms have no server name)
    if not room_id.startswith("!") or len(room_id) < 2 or len(room_id.encode()) > 255:
        raise invalid_param(f"{room_id!r} is not a legal room ID")
    return room_id


async def _removed(request: web.Request) -> web.Response:
    """POST /_synapse/admin/v1/rooms/{room_id}/delete (removed)"""
    # Synapse removed this in 1.47; say what replaced it rather than just "unrecognized"
    raise MatrixError(
        404,
        "M_UNRECOGNIZED",
        "This API was removed: use the Delete Room API, DELETE /_synapse/admin/v2/rooms/{room_id}",
    )


class RoomAdminEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        rooms: RoomAdminService,
        deletion: RoomDeletionService,
        server_name: str,
    ) -> None:
        self._auth = auth
        self._rooms = rooms
        self._deletion = deletion
        self._server_name = server_name

    def routes(self) -> list[web.RouteDef]:
        room = ADMIN + "/v1/rooms/{room_id}"
        return [
            web.get(ADMIN + "/v1/rooms", self.list_rooms),
            web.get(room, self.room_details),
            web.delete(room, self.delete_room_now),
            web.get(room + "/members", self.members),
            web.get(room + "/state", self.state),
            web.get(room + "/block", self.get_block),
            web.put(room + "/block", self.put_block),
            web.delete(ADMIN + "/v2/rooms/{room_id}", self.delete_room),
            web.get(ADMIN + "/v2/rooms/{room_id}/delete_status", self.delete_status_by_room),
            web.get(ADMIN + "/v2/rooms/delete_status/{delete_id}", self.delete_status_by_id),
            web.post(room + "/delete", _removed),
            # only room IDs: other admin paths end in /delete too
            web.post(ADMIN + "/v1/{room_id:![^/]+}/delete", _removed),
        ]

    async def list_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms"""
        await self._auth.require_admin(request)
        order_by = request.query.get("order_by", "name")
        order_by = _ORDER_BY_ALIASES.get(order_by, order_by)
        if order_by not in ROOM_ORDER_BY_VALUES:
            raise invalid_param(
                f"Query parameter 'order_by' must be one of {', '.join(ROOM_ORDER_BY_VALUES)}"
            )
        search_term = request.query.get("search_term")
        if search_term == "":
            raise invalid_param("Query parameter 'search_term' cannot be empty")
        query = RoomListQuery(
            start=query_int(request, "from", 0),
            limit=query_int(request, "limit", 100),
            order_by=order_by,  # type: ignore[arg-type]
            backwards=query_choice(request, "dir", "f", ("f", "b")) == "b",
            search_term=search_term,
            public_rooms=query_bool(request, "public_rooms"),
            empty_rooms=query_bool(request, "empty_rooms"),
        )
        return json_response(await self._rooms.list_rooms(query))

    async def room_details(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id}"""
        await self._auth.require_admin(request)
        return json_response(await self._rooms.room_details(_room_id(request)))

    async def members(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id}/members"""
        await self._auth.require_admin(request)
        return json_response(await self._rooms.members(_room_id(request)))

    async def state(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id}/state"""
        admin = await self._auth.require_admin(request)
        event_type = request.query.get("type") or None
        return json_response(await self._rooms.state(_room_id(request), event_type, admin.user_id))

    async def get_block(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/rooms/{room_id}/block"""
        await self._auth.require_admin(request)
        return json_response(await self._rooms.get_block(_room_id(request)))

    async def put_block(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/rooms/{room_id}/block"""
        admin = await self._auth.require_admin(request)
        block = (await read_body(request, _BlockBody)).block
        return json_response(await self._rooms.set_block(_room_id(request), block, admin.user_id))

    async def delete_room(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v2/rooms/{room_id}"""
        delete_request = await self._delete_request(request)
        return json_response({"delete_id": await self._deletion.start(delete_request)})

    async def delete_room_now(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/rooms/{room_id}"""
        delete_request = await self._delete_request(request)
        return json_response(await self._deletion.delete_now(delete_request))

    async def delete_status_by_room(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/rooms/{room_id}/delete_status"""
        await self._auth.require_admin(request)
        return json_response(await self._deletion.status_by_room(_room_id(request)))

    async def delete_status_by_id(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/rooms/delete_status/{delete_id}"""
        await self._auth.require_admin(request)
        return json_response(await self._deletion.status_by_id(request.match_info["delete_id"]))

    async def _delete_request(self, request: web.Request) -> DeleteRoomRequest:
        admin = await self._auth.require_admin(request)
        # as Synapse: the body must be a JSON object, `{}` at least
        body = await read_body(request, _DeleteRoomBody)
        new_room_user_id = body.new_room_user_id
        if new_room_user_id is not None and (
            not is_valid_user_id(new_room_user_id)
            or new_room_user_id.partition(":")[2] != self._server_name
        ):
            raise invalid_param(f"new_room_user_id must be a user on {self._server_name}")
        return DeleteRoomRequest(
            room_id=_room_id(request),
            requester_user_id=admin.user_id,
            new_room_user_id=new_room_user_id,
            room_name=body.room_name,
            message=body.message,
            block=body.block,
            purge=body.purge,
            force_purge=body.force_purge,
        )
