"""Authenticated media for other servers: spec server-server-api "Content Repository"
(content_repository.yaml). Only this server's own media is served, as multipart/mixed: a
JSON metadata part (empty) and then the bytes.
"""

from __future__ import annotations

import re
from typing import cast

import aiohttp
from aiohttp import web

from ranvier.api.federation.authentication import FederationAuthenticator
from ranvier.api.media.content import content_disposition, is_inline_type
from ranvier.http.params import missing_param, parse_int_param, query_bool, query_choice, query_int
from ranvier.services.media.service import (
    DEFAULT_TIMEOUT_MS,
    MediaContent,
    MediaService,
    not_found,
)
from ranvier.services.media.thumbnailer import Method

PREFIX = "/_matrix/federation/v1/media"
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def multipart_answer(content: MediaContent, *, inline: bool) -> web.Response:
    writer = aiohttp.MultipartWriter("mixed")
    writer.append_json({})
    # the file is read as the answer is written, not loaded whole
    part = writer.append(
        open(content.path, "rb"),  # noqa: SIM115 (the payload closes it when written)
        {
            "Content-Type": content.content_type,
            "Content-Disposition": content_disposition(
                content.content_type, content.filename, inline=inline
            ),
        },
    )
    part.headers.pop("Content-Length", None)
    return web.Response(body=writer)


class FederationMediaEndpoints:
    def __init__(self, auth: FederationAuthenticator, media: MediaService) -> None:
        self._auth = auth
        self._media = media

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "/download/{mediaId}", self.download),
            web.get(PREFIX + "/thumbnail/{mediaId}", self.thumbnail),
        ]

    def _media_id(self, request: web.Request) -> str:
        media_id = request.match_info["mediaId"]
        if not _MEDIA_ID.match(media_id):
            raise not_found()
        return media_id

    async def download(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/media/download/{mediaId}"""
        await self._auth.authenticate(request)
        media_id = self._media_id(request)
        content = await self._media.download(
            self._media.server_name,
            media_id,
            authenticated=True,
            timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS),
        )
        return multipart_answer(content, inline=is_inline_type(content.content_type))

    async def thumbnail(self, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/media/thumbnail/{mediaId}"""
        await self._auth.authenticate(request)
        media_id = self._media_id(request)
        width = _dimension(request, "width")
        height = _dimension(request, "height")
        method = cast(Method, query_choice(request, "method", "scale", ("crop", "scale")))
        content = await self._media.thumbnail(
            self._media.server_name,
            media_id,
            width=width,
            height=height,
            method=method,
            animated=query_bool(request, "animated") or False,
            authenticated=True,
            timeout_ms=query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS),
        )
        return multipart_answer(content, inline=True)


def _dimension(request: web.Request, name: str) -> int:
    value = request.query.get(name)
    if value is None:
        raise missing_param(name)
    return parse_int_param(name, value, minimum=1)
