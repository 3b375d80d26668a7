"""Purge History admin API (Synapse's paths and shapes): drop a room's history before an
event or a time, in the background, and ask how the purge is going."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.http.params import invalid_param
from ranvier.services.rooms.purge_history import HistoryPurgeService

ADMIN = "/_synapse/admin"


class _PurgeHistoryBody(RequestBody):
    purge_up_to_event_id: str | None = None
    purge_up_to_ts: int | None = None
    delete_local_events: bool = False


def _room_id(request: web.Request) -> str:
    room_id = request.match_info["room_id"]
    # spec: appendices "Room IDs" - "!" and an opaque part
    if not room_id.startswith("!") or len(room_id) < 2 or len(room_id.encode()) > 255:
        raise invalid_param(f"{room_id!r} is not a legal room ID")
    return room_id


class PurgeHistoryEndpoints:
    def __init__(self, auth: RequestAuthenticator, purges: HistoryPurgeService) -> None:
        self._auth = auth
        self._purges = purges

    def routes(self) -> list[web.RouteDef]:
        purge = ADMIN + "/v1/purge_history/{room_id}"
        return [
            web.post(purge, self.purge_history),
            web.post(purge + "/{event_id}", self.purge_history),
            web.get(ADMIN + "/v1/purge_history_status/{purge_id}", self.purge_status),
        ]

    async def purge_history(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/purge_history/{room_id}[/{event_id}]"""
        await self._auth.require_admin(request)
        # as Synapse: the body may be empty
        body = (
            await read_body(request, _PurgeHistoryBody)
            if request.can_read_body
            else _PurgeHistoryBody()
        )
        event_id = request.match_info.get("event_id")
        purge_id = await self._purges.start(
            _room_id(request),
            event_id=event_id if event_id is not None else body.purge_up_to_event_id,
            ts=body.purge_up_to_ts,
            delete_local_events=body.delete_local_events,
        )
        return json_response({"purge_id": purge_id})

    async def purge_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/purge_history_status/{purge_id}"""
        await self._auth.require_admin(request)
        return json_response(self._purges.status(request.match_info["purge_id"]))
