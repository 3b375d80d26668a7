"""Third-party invites redeemed: spec server-server-api third_party_invite.yaml
(PUT /_matrix/federation/v1/3pid/onbind, called by identity servers, unauthenticated).

The spec says PUT, but Sydent, the identity server most deployments use, sends POST, and
Synapse serves POST: both are routed to the same handler."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.services.third_party_invites import (
    BoundInvite,
    ThirdPartyInvites,
    ThreepidBinding,
)


class _Invite(RequestBody):
    medium: str
    address: str
    mxid: str
    room_id: str
    sender: str
    signed: dict[str, Any]


class _OnBindBody(RequestBody):
    medium: str
    address: str
    mxid: str
    invites: list[_Invite]


class OnBindEndpoints:
    def __init__(self, invites: ThirdPartyInvites) -> None:
        self._invites = invites

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/_matrix/federation/v1/3pid/onbind", self.on_bind),
            web.post("/_matrix/federation/v1/3pid/onbind", self.on_bind),
        ]

    async def on_bind(self, request: web.Request) -> web.Response:
        """PUT (or POST) /_matrix/federation/v1/3pid/onbind"""
        body = await read_body(request, _OnBindBody)
        await self._invites.on_bind(
            ThreepidBinding(
                medium=body.medium,
                address=body.address,
                mxid=body.mxid,
                invites=[BoundInvite(i.mxid, i.room_id, i.sender, i.signed) for i in body.invites],
            )
        )
        return json_response({})
