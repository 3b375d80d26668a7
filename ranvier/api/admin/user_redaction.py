"""Synapse's admin API "Redact all the events of a user" and its status
(docs/admin_api/user_admin_api)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import StrictInt, StrictStr

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.services.rooms.admin_user_redaction import DEFAULT_LIMIT, UserRedactions

ADMIN = "/_synapse/admin"


class _RedactBody(RequestBody):
    # empty: every room the user sent events in
    rooms: list[StrictStr] = []
    reason: StrictStr | None = None
    limit: StrictInt = DEFAULT_LIMIT


async def _optional_object(request: web.Request) -> dict[str, Any]:
    if not await request.read():
        return {}
    return await read_json_object(request)


class UserRedactionEndpoints:
    def __init__(self, auth: RequestAuthenticator, redactions: UserRedactions) -> None:
        self._auth = auth
        self._redactions = redactions

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ADMIN + "/v1/user/{user_id}/redact", self.redact),
            web.get(ADMIN + "/v1/user/redact_status/{redact_id}", self.status),
        ]

    async def redact(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/user/{user_id}/redact"""
        requester = await self._auth.require_admin(request)
        body = validate_body(await _optional_object(request), _RedactBody)
        redact_id = await self._redactions.start(
            requester.user_id, request.match_info["user_id"], body.rooms, body.reason, body.limit
        )
        return json_response({"redact_id": redact_id})

    async def status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/user/redact_status/{redact_id}"""
        await self._auth.require_admin(request)
        return json_response(self._redactions.status(request.match_info["redact_id"]))
