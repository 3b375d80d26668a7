"""Media admin API: Synapse's paths and shapes (docs/admin_api.md), so admin tools work."""

from __future__ import annotations

from typing import Any, cast

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import json_response
from ranvier.http.params import missing_param, query_bool, query_choice, query_int
from ranvier.services.media.service import MediaService
from ranvier.storage.media import MEDIA_ORDER_VALUES, MediaOrder, MediaRecord
from ranvier.storage.media_remote_cache import RemoteMediaRecord

ADMIN = "/_synapse/admin/v1"


def render(record: MediaRecord) -> dict[str, Any]:
    return {
        "media_id": record.media_id,
        "media_type": record.media_type,
        "media_length": record.media_length,
        "upload_name": record.upload_name,
        "created_ts": record.created_ts,
        "last_access_ts": record.last_access_ts,
        "quarantined_by": record.quarantined_by,
        "safe_from_quarantine": record.safe_from_quarantine,
        "user_id": record.user_id,
        "authenticated": record.authenticated,
    }


def render_remote(record: RemoteMediaRecord) -> dict[str, Any]:
    return {
        "media_origin": record.media_origin,
        "media_id": record.media_id,
        "media_type": record.media_type,
        "media_length": record.media_length,
        "upload_name": record.upload_name,
        "created_ts": record.created_ts,
        "last_access_ts": record.last_access_ts,
        "quarantined_by": record.quarantined_by,
        "authenticated": record.authenticated,
        "sha256": record.sha256,
    }


def _deleted(media_ids: list[str]) -> web.Response:
    return json_response({"deleted_media": media_ids, "total": len(media_ids)})


class MediaAdminEndpoints:
    def __init__(self, auth: RequestAuthenticator, media: MediaService) -> None:
        self._auth = auth
        self._media = media

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ADMIN + "/media/delete", self.delete_old),
            web.post(ADMIN + "/purge_media_cache", self.purge_media_cache),
            web.post(ADMIN + "/media/{serverName}/delete", self.delete_old),
            web.post(ADMIN + "/media/quarantine/{serverName}/{mediaId}", self.quarantine),
            web.post(ADMIN + "/media/unquarantine/{serverName}/{mediaId}", self.unquarantine),
            web.post(ADMIN + "/media/protect/{mediaId}", self.protect),
            web.post(ADMIN + "/media/unprotect/{mediaId}", self.unprotect),
            web.get(ADMIN + "/media/{serverName}/{mediaId}", self.get_media),
            web.delete(ADMIN + "/media/{serverName}/{mediaId}", self.delete_media),
            web.post(ADMIN + "/room/{roomId}/media/quarantine", self.quarantine_room),
            # Synapse's older spelling of the same
            web.post(ADMIN + "/quarantine_media/{roomId}", self.quarantine_room),
            web.get(ADMIN + "/room/{roomId}/media", self.room_media),
            web.post(ADMIN + "/user/{userId}/media/quarantine", self.quarantine_user),
            web.get(ADMIN + "/users/{userId}/media", self.list_user_media),
            web.delete(ADMIN + "/users/{userId}/media", self.delete_user_media),
        ]

    async def quarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}"""
        requester = await self._auth.require_admin(request)
        info = request.match_info
        await self._media.quarantine(info["serverName"], info["mediaId"], requester.user_id)
        return json_response({})

    async def unquarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}"""
        await self._auth.require_admin(request)
        info = request.match_info
        await self._media.unquarantine(info["serverName"], info["mediaId"])
        return json_response({})

    async def protect(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/protect/{mediaId}"""
        await self._auth.require_admin(request)
        await self._media.set_protected(request.match_info["mediaId"], True)
        return json_response({})

    async def unprotect(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/unprotect/{mediaId}"""
        await self._auth.require_admin(request)
        await self._media.set_protected(request.match_info["mediaId"], False)
        return json_response({})

    async def get_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/media/{serverName}/{mediaId}"""
        await self._auth.require_admin(request)
        info = request.match_info
        record = await self._media.get_record(info["serverName"], info["mediaId"])
        if isinstance(record, RemoteMediaRecord):
            return json_response({"media_info": render_remote(record)})
        return json_response({"media_info": render(record)})

    async def purge_media_cache(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/purge_media_cache"""
        await self._auth.require_admin(request)
        if "before_ts" not in request.query:
            raise missing_param("before_ts")
        before_ts = query_int(request, "before_ts", 0)
        if before_ts < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "before_ts must be a positive integer")
        if before_ts < 30_000_000_000:
            # as Synapse: seconds given where milliseconds are meant would purge nothing
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                "before_ts is in 1970: give a timestamp in milliseconds",
            )
        return json_response({"deleted": await self._media.purge_media_cache(before_ts)})

    async def delete_media(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}"""
        await self._auth.require_admin(request)
        info = request.match_info
        await self._media.delete(info["serverName"], info["mediaId"])
        return _deleted([info["mediaId"]])

    async def delete_old(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/delete"""
        await self._auth.require_admin(request)
        if "before_ts" not in request.query:
            raise missing_param("before_ts")
        server_name = request.match_info.get("serverName")
        if server_name is not None:
            # the older path names the server; only local media can be deleted
            self._media.check_local_server(server_name)
        deleted = await self._media.delete_old_media(
            before_ts=query_int(request, "before_ts", 0),
            size_gt=query_int(request, "size_gt", 0),
            keep_profiles=query_bool(request, "keep_profiles") is not False,
        )
        return _deleted(deleted)

    async def quarantine_room(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/room/{roomId}/media/quarantine"""
        requester = await self._auth.require_admin(request)
        count = await self._media.quarantine_room(request.match_info["roomId"], requester.user_id)
        return json_response({"num_quarantined": count})

    async def room_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/room/{roomId}/media"""
        await self._auth.require_admin(request)
        local, remote = await self._media.room_media(request.match_info["roomId"])
        return json_response({"local": local, "remote": remote})

    async def quarantine_user(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/user/{userId}/media/quarantine"""
        requester = await self._auth.require_admin(request)
        count = await self._media.quarantine_user(request.match_info["userId"], requester.user_id)
        return json_response({"num_quarantined": count})

    def _page(self, request: web.Request) -> dict[str, Any]:
        return {
            "offset": query_int(request, "from", 0),
            "limit": query_int(request, "limit", 100),
            "order_by": cast(
                MediaOrder, query_choice(request, "order_by", "created_ts", MEDIA_ORDER_VALUES)
            ),
            "backwards": query_choice(request, "dir", "f", ("f", "b")) == "b",
        }

    async def list_user_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/media"""
        await self._auth.require_admin(request)
        page = self._page(request)
        records, total = await self._media.list_user_media(request.match_info["userId"], **page)
        body: dict[str, Any] = {"media": [render(r) for r in records], "total": total}
        following = page["offset"] + len(records)
        if following < total and records:
            body["next_token"] = following
        return json_response(body)

    async def delete_user_media(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{userId}/media"""
        await self._auth.require_admin(request)
        page = self._page(request)
        deleted = await self._media.delete_user_media(request.match_info["userId"], **page)
        return _deleted(deleted)
