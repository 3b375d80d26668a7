"""Server-side key backups: spec client-server-api "Server-side key backups"
(key_backup.yaml)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.body import optional_str, required_str
from ranvier.http.json import json_response, read_json_object
from ranvier.services.key_backup import KeyBackupService, KeyCounts, VersionInfo
from ranvier.storage.key_backup import RoomKey

CLIENT = "/_matrix/client/v3"
VERSION = CLIENT + "/room_keys/version"
KEYS = CLIENT + "/room_keys/keys"
# canonical JSON's integer range (spec: appendices "Canonical JSON")
_MAX_JSON_INT = 2**53 - 1


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


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{where}'")
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", f"'{where}' must be an object")
    return value


def _count(body: dict[str, Any], key: str, where: str) -> int:
    value = body.get(key)
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{where}.{key}'")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_JSON_INT:
        raise MatrixError(400, "M_BAD_JSON", f"'{where}.{key}' must be a non-negative integer")
    return value


def parse_key(room_id: str, session_id: str, body: Any, where: str) -> RoomKey:
    """One KeyBackupData object; `where` names it in errors."""
    body = _object(body, where)
    is_verified = body.get("is_verified")
    if is_verified is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{where}.is_verified'")
    if not isinstance(is_verified, bool):
        raise MatrixError(400, "M_BAD_JSON", f"'{where}.is_verified' must be true or false")
    return RoomKey(
        room_id=room_id,
        session_id=session_id,
        first_message_index=_count(body, "first_message_index", where),
        forwarded_count=_count(body, "forwarded_count", where),
        is_verified=is_verified,
        session_data=_object(body.get("session_data"), f"{where}.session_data"),
    )


def parse_sessions(room_id: str, body: Any, where: str) -> list[RoomKey]:
    """One RoomKeyBackup object: {"sessions": {session_id: KeyBackupData}}."""
    sessions = _object(_object(body, where).get("sessions"), f"{where}.sessions")
    return [
        parse_key(room_id, session_id, data, f"{where}.sessions.{session_id}")
        for session_id, data in sessions.items()
    ]


def required_version(request: web.Request) -> str:
    version = request.query.get("version")
    if version is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'version' query parameter")
    return version


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
        body = await read_json_object(request)
        algorithm = required_str(body, "algorithm")
        auth_data = _object(body.get("auth_data"), "auth_data")
        version = await self._key_backup.create_version(requester.user_id, algorithm, auth_data)
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
        body = await read_json_object(request)
        algorithm = required_str(body, "algorithm")
        auth_data = _object(body.get("auth_data"), "auth_data")
        await self._key_backup.update_version(
            requester.user_id,
            request.match_info["version"],
            algorithm,
            auth_data,
            body_version=optional_str(body, "version"),
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
        body = await read_json_object(request)
        rooms = _object(body.get("rooms"), "rooms")
        keys = [
            key
            for room_id, room in rooms.items()
            for key in parse_sessions(room_id, room, f"rooms.{room_id}")
        ]
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
        body = await read_json_object(request)
        keys = parse_sessions(request.match_info["roomId"], body, "body")
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
        body = await read_json_object(request)
        key = parse_key(request.match_info["roomId"], request.match_info["sessionId"], body, "body")
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
