"""Syncing: spec sync.yaml."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import invalid_param, query_bool, query_int, query_string
from ranvier.services.sync.service import SyncRequest, SyncService
from ranvier.streams.sync_token import InvalidSyncToken, SyncToken

CLIENT = "/_matrix/client/v3"
# a client asking for longer waits gets this; proxies commonly cut idle requests at 60 s
MAX_TIMEOUT_MS = 55_000


def query_sync_token(request: web.Request, name: str) -> SyncToken | None:
    """Query parameter `name` as a sync token (absent: None), else M_INVALID_PARAM."""
    text = query_string(request, name)
    if text is None:
        return None
    try:
        return SyncToken.parse(text)
    except InvalidSyncToken as exc:
        raise invalid_param(f"Query parameter '{name}': {exc}") from None


class SyncEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        sync: SyncService,
        on_user_syncing: Callable[[str, bool], Awaitable[None]] | None = None,
    ) -> None:
        self._auth = auth
        self._sync = sync
        # (user ID, is guest) before each sync: server notices due to the user are sent
        self._on_user_syncing = on_user_syncing

    def routes(self) -> list[web.RouteDef]:
        return [web.get(CLIENT + "/sync", self.sync)]

    async def sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/sync"""
        requester = await self._auth.require_user(request, allow_guest=True)
        since = query_sync_token(request, "since")
        if self._on_user_syncing is not None:
            await self._on_user_syncing(requester.user_id, requester.is_guest)
        body = await self._sync.sync(
            SyncRequest(
                user_id=requester.user_id,
                device_id=requester.device_id,
                since=since,
                timeout_ms=min(query_int(request, "timeout", 0), MAX_TIMEOUT_MS),
                full_state=bool(query_bool(request, "full_state")),
                set_presence=query_string(request, "set_presence"),
                filter=query_string(request, "filter"),
            )
        )
        return json_response(body)
