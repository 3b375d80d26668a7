"""Synapse's server notices admin API (docs/admin_api/server_notices)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.server_notices import ServerNoticesService

ADMIN = "/_synapse/admin"


class _NoticeBody(RequestBody):
    user_id: StrictStr
    content: dict[str, Any]
    type: StrictStr = "m.room.message"
    state_key: StrictStr | None = None


class ServerNoticeEndpoints:
    def __init__(self, auth: RequestAuthenticator, notices: ServerNoticesService) -> None:
        self._auth = auth
        self._notices = notices

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ADMIN + "/v1/send_server_notice", self.send),
            web.put(ADMIN + "/v1/send_server_notice/{txn_id}", self.send),
        ]

    async def send(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/send_server_notice and PUT .../send_server_notice/{txn_id}"""
        requester = await self._auth.require_admin(request)
        body = await read_body(request, _NoticeBody)
        event_id = await self._notices.send_notice(
            requester.user_id,
            body.user_id,
            body.type,
            body.state_key,
            body.content,
            request.match_info.get("txn_id"),
        )
        return json_response({"event_id": event_id})
