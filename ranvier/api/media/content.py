"""The content repository: spec client-server-api "Content repository"
(authed-content-repo.yaml for /_matrix/client/v1/media, content-repo.yaml for the
upload/create endpoints and the deprecated unauthenticated /_matrix/media ones).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import quote

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.http.json import json_response
from ranvier.http.params import (
    missing_param,
    parse_int_param,
    query_bool,
    query_choice,
    query_int,
    query_string,
)
from ranvier.http.ratelimit import Ratelimiter, client_address
from ranvier.services.media.files import upload_too_large
from ranvier.services.media.service import (
    DEFAULT_TIMEOUT_MS,
    MediaContent,
    MediaService,
    not_found,
)
from ranvier.services.media.thumbnailer import Method

AUTHED = "/_matrix/client/v1/media"
LEGACY_PREFIXES = ("/_matrix/media/v3", "/_matrix/media/r0")
CREATE = "/_matrix/media/v1/create"
_CHUNK_SIZE = 64 * 1024

# spec: content_repo "Serving inline content" - the only types served inline
INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
# spec: content_repo, the recommended policy for served content
CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)
# spec: media IDs are A-Za-z0-9, _ and -; anything else cannot name media here
_MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def content_disposition(content_type: str, filename: str | None, *, inline: bool) -> str:
    disposition = "inline" if inline else "attachment"
    if not filename:
        return disposition
    if all(32 <= ord(c) < 127 and c not in '"\\' for c in filename):
        return f'{disposition}; filename="{filename}"'
    # RFC 6266 / 5987: anything else travels percent-encoded as UTF-8
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


def is_inline_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in INLINE_CONTENT_TYPES


def serve(content: MediaContent, *, inline: bool, authenticated: bool) -> web.FileResponse:
    headers = {
        "Content-Type": content.content_type,
        "Content-Disposition": content_disposition(
            content.content_type, content.filename, inline=inline
        ),
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        # media behind an access token must not land in shared caches
        "Cache-Control": ("private" if authenticated else "public") + ", max-age=86400",
    }
    return web.FileResponse(content.path, headers=headers)


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(_CHUNK_SIZE):
        yield chunk


def _media_id(request: web.Request) -> tuple[str, str]:
    media_id = request.match_info["mediaId"]
    if not _MEDIA_ID.match(media_id):
        raise not_found()
    return request.match_info["serverName"], media_id


def _timeout_ms(request: web.Request) -> int:
    return query_int(request, "timeout_ms", DEFAULT_TIMEOUT_MS)


def _allow_remote(request: web.Request) -> bool:
    # allow_redirect is parsed for its errors only: content is always served directly
    # (spec: a redirect is only ever allowed, never required)
    query_bool(request, "allow_redirect")
    return query_bool(request, "allow_remote") is not False


class _AddressBudget:
    """remote_media_download_*: the bytes this client's address may have fetched."""

    def __init__(self, limiter: Ratelimiter, address: str) -> None:
        self._limiter = limiter
        self._address = address

    def check(self) -> None:
        self._limiter.check(self._address, update=False)

    def spend(self, length: int) -> None:
        self._limiter.record(self._address, length)


def _upload_name(request: web.Request) -> str | None:
    return query_string(request, "filename") or None


class MediaEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        media: MediaService,
        create_ratelimiter: Ratelimiter,
        remote_download_ratelimiter: Ratelimiter,
    ) -> None:
        self._auth = auth
        self._media = media
        self._create_ratelimiter = create_ratelimiter
        self._remote_download_ratelimiter = remote_download_ratelimiter

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.get(AUTHED + "/download/{serverName}/{mediaId}", self.authed_download),
            web.get(AUTHED + "/download/{serverName}/{mediaId}/{fileName}", self.authed_download),
            web.get(AUTHED + "/thumbnail/{serverName}/{mediaId}", self.authed_thumbnail),
            web.get(AUTHED + "/config", self.config),
            web.post(CREATE, self.create),
            web.put("/_matrix/media/v3/upload/{serverName}/{mediaId}", self.upload_to),
        ]
        for prefix in LEGACY_PREFIXES:
            routes += [
                web.post(prefix + "/upload", self.upload),
                web.get(prefix + "/download/{serverName}/{mediaId}", self.legacy_download),
                web.get(
                    prefix + "/download/{serverName}/{mediaId}/{fileName}", self.legacy_download
                ),
                web.get(prefix + "/thumbnail/{serverName}/{mediaId}", self.legacy_thumbnail),
                web.get(prefix + "/config", self.config),
            ]
        return routes

    def _check_declared_length(self, request: web.Request) -> None:
        declared = request.content_length
        if declared is not None and declared > self._media.max_upload_size:
            raise upload_too_large(self._media.max_upload_size)

    async def upload(self, request: web.Request) -> web.Response:
        """POST /_matrix/media/v3/upload"""
        requester = await self._auth.require_user(request)
        self._check_declared_length(request)
        stored = await self._media.upload(
            requester.user_id,
            _chunks(request),
            content_type=request.headers.get("Content-Type"),
            upload_name=_upload_name(request),
        )
        return json_response({"content_uri": stored.content_uri})

    async def create(self, request: web.Request) -> web.Response:
        """POST /_matrix/media/v1/create"""
        requester = await self._auth.require_user(request)
        self._create_ratelimiter.check_user(requester)
        created = await self._media.create(requester.user_id)
        return json_response(
            {"content_uri": created.content_uri, "unused_expires_at": created.unused_expires_at}
        )

    async def upload_to(self, request: web.Request) -> web.Response:
        """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
        requester = await self._auth.require_user(request)
        server_name, media_id = _media_id(request)
        self._check_declared_length(request)
        await self._media.upload_to(
            requester.user_id,
            server_name,
            media_id,
            _chunks(request),
            content_type=request.headers.get("Content-Type"),
            upload_name=_upload_name(request),
        )
        return json_response({})

    async def authed_download(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}"""
        await self._auth.require_user(request, allow_guest=True)
        return await self._download(request, authenticated=True)

    async def legacy_download(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/media/v3/download/{serverName}/{mediaId}"""
        return await self._download(request, authenticated=False)

    async def _download(self, request: web.Request, *, authenticated: bool) -> web.StreamResponse:
        server_name, media_id = _media_id(request)
        content = await self._media.download(
            server_name,
            media_id,
            authenticated=authenticated,
            timeout_ms=_timeout_ms(request),
            allow_remote=_allow_remote(request),
            budget=self._budget(request),
        )
        # spec: a file name in the path replaces the uploaded one
        filename = request.match_info.get("fileName") or content.filename
        named = MediaContent(content.path, content.content_type, content.length, filename)
        return serve(
            named, inline=is_inline_type(content.content_type), authenticated=authenticated
        )

    async def authed_thumbnail(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
        await self._auth.require_user(request, allow_guest=True)
        return await self._thumbnail(request, authenticated=True)

    async def legacy_thumbnail(self, request: web.Request) -> web.StreamResponse:
        """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}"""
        return await self._thumbnail(request, authenticated=False)

    async def _thumbnail(self, request: web.Request, *, authenticated: bool) -> web.StreamResponse:
        server_name, media_id = _media_id(request)
        width = _dimension(request, "width")
        height = _dimension(request, "height")
        method = cast(Method, query_choice(request, "method", "scale", ("crop", "scale")))
        animated = query_bool(request, "animated") or False
        allow_remote = _allow_remote(request)
        content = await self._media.thumbnail(
            server_name,
            media_id,
            width=width,
            height=height,
            method=method,
            animated=animated,
            authenticated=authenticated,
            timeout_ms=_timeout_ms(request),
            allow_remote=allow_remote,
            budget=self._budget(request),
        )
        # spec: thumbnails are always inline
        return serve(content, inline=True, authenticated=authenticated)

    def _budget(self, request: web.Request) -> _AddressBudget:
        return _AddressBudget(self._remote_download_ratelimiter, client_address(request))

    async def config(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/media/config"""
        await self._auth.require_user(request, allow_guest=True)
        return json_response(self._media.config_response())


def _dimension(request: web.Request, name: str) -> int:
    value = request.query.get(name)
    if value is None:
        raise missing_param(name)
    return parse_int_param(name, value, minimum=1)
