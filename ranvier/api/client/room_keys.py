"""Server-side key backups: spec client-server-api "Server-side key backups"
(key_backup.yaml)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, StrictBool, StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import MAX_INT, required_query_string
from ranvier.services.key_backup import KeyBackupService, KeyCounts, VersionInfo
from ranvier.storage.key_backup import RoomKey

CLIENT = "/_matrix/client/v3"
VERSION = CLIENT + "/room_keys/version"
KEYS = CLIENT + "/room_keys/keys"


def render_version(info: VersionInfo) -> dict[str, Any]:
    return {
        "algorithm": info.algorithm,
        "auth_data": info.auth_data,
        "count": info.count,
        "etag": info.etag,
        "version": info.version,
    }


def render_counts(counts: KeyCounts) -> dict[str, Any]:
    return {"etag": counts.etag, "count": counts.count}


def render_key(key: RoomKey) -> dict[str, Any]:
    return {
        "first_message_index": key.first_message_index,
        "forwarded_count": key.forwarded_count,
        "is_verified": key.is_verified,
        "session_data": key.session_data,
    }


def render_sessions(keys: list[RoomKey]) -> dict[str, Any]:
    return {"sessions": {key.session_id: render_key(key) for key in keys}}


def render_rooms(keys: list[RoomKey]) -> dict[str, Any]:
    rooms: dict[str, dict[str, Any]] = {}
    for key in keys:
        rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = render_key(
            key
        )
    return {"rooms": rooms}


class _VersionBody(RequestBody):
    algorithm: StrictStr
    # opaque to the server and kept as sent: the spec describes an object, but Synapse
    # stores any JSON value and clients (SyTest among them) send strings
    auth_data: Any
    # PUT only: if given, it must name the version in the path (the service's rule)
    version: StrictStr | None = None


# spec: KeyBackupData. Counts are non-negative and within canonical JSON's integers.
_Count = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]


class _KeyBackupData(RequestBody):
    first_message_index: _Count
    forwarded_count: _Count
    is_verified: StrictBool
    # encrypted by the client and kept as sent, whatever its JSON type (as Synapse)
    session_data: Any

    def room_key(self, room_id: str, session_id: str) -> RoomKey:
        return RoomKey(
            room_id=room_id,
            session_id=session_id,
            first_message_index=self.first_message_index,
            forwarded_count=self.forwarded_count,
            is_verified=self.is_verified,
            session_data=self.session_data,
        )


class _RoomKeyBackup(RequestBody):
    sessions: dict[str, _KeyBackupData]

    def room_keys(self, room_id: str) -> list[RoomKey]:
        return [data.room_key(room_id, session_id) for session_id, data in self.sessions.items()]


class _RoomsBody(RequestBody):
    rooms: dict[str, _RoomKeyBackup]

    def room_keys(self) -> list[RoomKey]:
        return [key for room_id, room in self.rooms.items() for key in room.room_keys(room_id)]


def required_version(request: web.Request) -> str:
    return required_query_string(request, "version")


class RoomKeyEndpoints:
    def __init__(self, auth: RequestAuthenticator, key_backup: KeyBackupService) -> None:
        self._auth = auth
        self._key_backup = key_backup

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(VERSION, self.create_version),
            web.get(VERSION, self.get_current_version),
            web.get(VERSION + "/{version}", self.get_version),
            web.put(VERSION + "/{version}", self.update_version),
            web.delete(VERSION + "/{version}", self.delete_version),
            web.put(KEYS, self.put_keys),
            web.get(KEYS, self.get_keys),
            web.delete(KEYS, self.delete_keys),
            web.put(KEYS + "/{roomId}", self.put_room_keys),
            web.get(KEYS + "/{roomId}", self.get_room_keys),
            web.delete(KEYS + "/{roomId}", self.delete_room_keys),
            web.put(KEYS + "/{roomId}/{sessionId}", self.put_session_key),
            web.get(KEYS + "/{roomId}/{sessionId}", self.get_session_key),
            web.delete(KEYS + "/{roomId}/{sessionId}", self.delete_session_key),
        ]

    # -- versions --

    async def create_version(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/room_keys/version"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _VersionBody)
        version = await self._key_backup.create_version(
            requester.user_id, body.algorithm, body.auth_data
        )
        return json_response({"version": version})

    async def get_current_version(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/version"""
        requester = await self._auth.require_user(request)
        info = await self._key_backup.current_version(requester.user_id)
        return json_response(render_version(info))

    async def get_version(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/version/{version}"""
        requester = await self._auth.require_user(request)
        info = await self._key_backup.get_version(requester.user_id, request.match_info["version"])
        return json_response(render_version(info))

    async def update_version(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/version/{version}"""
        requester = await self._auth.require_user(request)
        body = await read_body(request, _VersionBody)
        await self._key_backup.update_version(
            requester.user_id,
            request.match_info["version"],
            body.algorithm,
            body.auth_data,
            body_version=body.version,
        )
        return json_response({})

    async def delete_version(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/version/{version}"""
        requester = await self._auth.require_user(request)
        await self._key_backup.delete_version(requester.user_id, request.match_info["version"])
        return json_response({})

    # -- keys --

    async def put_keys(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/keys"""
        requester = await self._auth.require_user(request)
        version = required_version(request)
        keys = (await read_body(request, _RoomsBody)).room_keys()
        counts = await self._key_backup.upload_keys(requester.user_id, version, keys)
        return json_response(render_counts(counts))

    async def get_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/keys"""
        requester = await self._auth.require_user(request)
        keys = await self._key_backup.get_keys(requester.user_id, required_version(request))
        return json_response(render_rooms(keys))

    async def delete_keys(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/keys"""
        requester = await self._auth.require_user(request)
        counts = await self._key_backup.delete_keys(requester.user_id, required_version(request))
        return json_response(render_counts(counts))

    async def put_room_keys(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/keys/{roomId}"""
        requester = await self._auth.require_user(request)
        version = required_version(request)
        body = await read_body(request, _RoomKeyBackup)
        keys = body.room_keys(request.match_info["roomId"])
        counts = await self._key_backup.upload_keys(requester.user_id, version, keys)
        return json_response(render_counts(counts))

    async def get_room_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/keys/{roomId}"""
        requester = await self._auth.require_user(request)
        keys = await self._key_backup.get_keys(
            requester.user_id, required_version(request), request.match_info["roomId"]
        )
        # spec: no keys for the room is {"sessions": {}}, not an error
        return json_response(render_sessions(keys))

    async def delete_room_keys(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/keys/{roomId}"""
        requester = await self._auth.require_user(request)
        counts = await self._key_backup.delete_keys(
            requester.user_id, required_version(request), request.match_info["roomId"]
        )
        return json_response(render_counts(counts))

    async def put_session_key(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        requester = await self._auth.require_user(request)
        version = required_version(request)
        body = await read_body(request, _KeyBackupData)
        key = body.room_key(request.match_info["roomId"], request.match_info["sessionId"])
        counts = await self._key_backup.upload_keys(requester.user_id, version, [key])
        return json_response(render_counts(counts))

    async def get_session_key(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        requester = await self._auth.require_user(request)
        keys = await self._key_backup.get_keys(
            requester.user_id,
            required_version(request),
            request.match_info["roomId"],
            request.match_info["sessionId"],
        )
        if not keys:
            raise MatrixError(404, "M_NOT_FOUND", "No key backed up for this session")
        return json_response(render_key(keys[0]))

    async def delete_session_key(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"""
        requester = await self._auth.require_user(request)
        counts = await self._key_backup.delete_keys(
            requester.user_id,
            required_version(request),
            request.match_info["roomId"],
            request.match_info["sessionId"],
        )
        return json_response(render_counts(counts))
