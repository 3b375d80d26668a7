"""GET preview_url: the OpenGraph answer for a URL, from the cache or a checked fetch.

A page's `og:image` (or the URL itself, when it is an image) is fetched the same checked
way, kept as local media of the requesting user, and answered as its `mxc://` URI with
its size and type. Failing to get the image never fails the preview, as in Synapse.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.media.service import MediaService
from ranvier.services.media.url_preview.fetcher import FetchedResource, PreviewFetcher
from ranvier.services.media.url_preview.opengraph import OpenGraph, decode_html, parse_open_graph
from ranvier.storage.url_previews import CachedPreview, UrlPreviewStore

logger = logging.getLogger(__name__)

_HTML_TYPES = ("text/html", "application/xhtml+xml")


def is_image(media_type: str) -> bool:
    return media_type.startswith("image/")


def is_previewable(media_type: str) -> bool:
    return is_image(media_type) or media_type in _HTML_TYPES


@dataclass(frozen=True)
class StoredImage:
    """An image kept as local media: its mxc:// URI and, when it could be read, its size."""

    mxc_uri: str
    width: int | None
    height: int | None


class PreviewImageStore(Protocol):
    """Where preview images go: the media repository (services/media)."""

    async def store_preview_image(
        self, user_id: str, media_type: str, filename: str | None, data: bytes
    ) -> StoredImage | None: ...


class MediaRepositoryImages:
    """Preview images as local media of the user who asked, with their thumbnails made
    at once: a client showing the preview asks for one next."""

    def __init__(self, media: MediaService) -> None:
        self._media = media

    async def store_preview_image(
        self, user_id: str, media_type: str, filename: str | None, data: bytes
    ) -> StoredImage | None:
        stored = await self._media.store_bytes(
            data, content_type=media_type, upload_name=filename, user_id=user_id
        )
        if stored.image_width is not None:
            await self._media.pregenerate_thumbnails(stored.media_id)
        return StoredImage(stored.content_uri, stored.image_width, stored.image_height)


class UrlPatterns:
    """`url_preview_url_blacklist`: a URL is refused when every component named by one
    entry matches it (a glob, or a regex when the pattern starts with `^`)."""

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self._entries = entries

    def refuses(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            values = {
                "scheme": parts.scheme,
                "netloc": parts.netloc,
                "hostname": parts.hostname,
                "port": parts.port,
                "path": parts.path,
                "query": parts.query,
                "fragment": parts.fragment,
                "username": parts.username,
                "password": parts.password,
            }
        except ValueError:
            return True
        return any(self._matches(entry, values) for entry in self._entries)

    @staticmethod
    def _matches(entry: dict[str, str], values: dict[str, Any]) -> bool:
        for component, pattern in entry.items():
            value = values.get(component)
            if value is None:
                return False
            text = str(value)
            if pattern.startswith("^"):
                if not re.match(pattern, text):
                    return False
            elif not fnmatch.fnmatch(text, pattern):
                return False
        return True


class UrlPreviewService:
    def __init__(
        self,
        store: UrlPreviewStore,
        fetcher: PreviewFetcher,
        images: PreviewImageStore | None,
        patterns: UrlPatterns,
        *,
        cache_duration_ms: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._fetcher = fetcher
        self._images = images
        self._patterns = patterns
        self._cache_duration_ms = cache_duration_ms
        self._clock = clock
        # one fetch per URL at a time: concurrent requests wait for the same answer
        self._in_flight: dict[str, asyncio.Task[OpenGraph]] = {}

    async def close(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()
        await self._fetcher.close()

    async def preview(self, user_id: str, url: str, ts: int | None) -> OpenGraph:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise MatrixError(400, "M_INVALID_PARAM", "Only http and https URLs can be previewed")
        if self._patterns.refuses(url):
            logger.info("URL preview of %s refused by url_preview_url_blacklist", url)
            raise MatrixError(403, "M_UNKNOWN", "URL blocked by url pattern blacklist entry")
        if ts is None:
            ts = self._clock()
        task = self._in_flight.get(url)
        if task is None:
            task = asyncio.create_task(self._preview(user_id, url, ts))
            self._in_flight[url] = task
            task.add_done_callback(lambda done: self._finished(url, done))
        # shielded: a client hanging up must not cancel the fetch others wait for
        return dict(await asyncio.shield(task))

    def _finished(self, url: str, task: asyncio.Task[OpenGraph]) -> None:
        self._in_flight.pop(url, None)
        # every waiter may have hung up; the failure was theirs to see, not the log's
        if not task.cancelled():
            task.exception()

    async def _preview(self, user_id: str, url: str, ts: int) -> OpenGraph:
        cached = await self._store.get_preview(url, ts)
        if cached is not None and cached.expires_ts > ts and cached.response_code // 100 == 2:
            og: OpenGraph = orjson.loads(cached.og)
            return og
        resource = await self._fetcher.fetch(url, allowed=is_previewable)
        media_id: str | None = None
        if is_image(resource.media_type):
            og = {"og:description": resource.filename} if resource.filename else {}
            media_id = await self._attach_image(user_id, resource, og)
        else:
            og = parse_open_graph(decode_html(resource.body, resource.content_type), resource.url)
            image_url = og.pop("og:image", None)
            if isinstance(image_url, str):
                image = await self._fetch_image(image_url)
                if image is not None:
                    media_id = await self._attach_image(user_id, image, og)
        now = self._clock()
        await self._store.store_preview(
            CachedPreview(
                url=url,
                download_ts=now,
                expires_ts=now + self._cache_duration_ms,
                response_code=resource.status,
                etag=resource.etag,
                og=orjson.dumps(og).decode(),
                media_id=media_id,
            )
        )
        return og

    async def _fetch_image(self, image_url: str) -> FetchedResource | None:
        try:
            return await self._fetcher.fetch(image_url, allowed=is_image)
        except MatrixError as exc:
            logger.info("URL preview: not using image %s: %s", image_url, exc.error)
            return None

    async def _attach_image(
        self, user_id: str, image: FetchedResource, og: OpenGraph
    ) -> str | None:
        """Store the image as media and describe it in `og`; returns its media ID."""
        if self._images is None:
            return None
        stored = await self._images.store_preview_image(
            user_id, image.media_type, image.filename, image.body
        )
        if stored is None:
            return None
        og["og:image"] = stored.mxc_uri
        og["og:image:type"] = image.media_type
        og["matrix:image:size"] = len(image.body)
        if stored.width is not None and stored.height is not None:
            og["og:image:width"] = stored.width
            og["og:image:height"] = stored.height
        return stored.mxc_uri.rsplit("/", 1)[-1]
