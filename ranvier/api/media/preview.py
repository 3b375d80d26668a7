"""URL previews: spec client-server-api "Content repository" (authed-content-repo.yaml,
content-repo.yaml). Served only with `url_preview_enabled`; otherwise the paths are
unknown (404 M_UNRECOGNIZED), as on Synapse."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import parse_int_param, query_string, required_query_string
from ranvier.services.media.url_preview.service import UrlPreviewService


class PreviewEndpoints:
    def __init__(self, auth: RequestAuthenticator, previews: UrlPreviewService) -> None:
        self._auth = auth
        self._previews = previews

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_matrix/client/v1/media/preview_url", self.preview_url),
            # legacy, and authenticated too: the spec's security section names a token
            web.get("/_matrix/media/v3/preview_url", self.legacy_preview_url),
            web.get("/_matrix/media/r0/preview_url", self.legacy_preview_url),
        ]

    async def preview_url(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/media/preview_url"""
        requester = await self._auth.require_user(request)
        url = required_query_string(request, "url")
        ts_text = query_string(request, "ts")
        ts = None if ts_text is None else parse_int_param("ts", ts_text)
        og = await self._previews.preview(requester.user_id, url, ts)
        return json_response(og)

    async def legacy_preview_url(self, request: web.Request) -> web.Response:
        """GET /_matrix/media/v3/preview_url"""
        return await self.preview_url(request)
