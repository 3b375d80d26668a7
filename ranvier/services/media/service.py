"""The media repository: uploads (at once, or to an ID created first), downloads and
thumbnails of local media, and the admin's quarantine and deletion.

Other services store media through `store_bytes` (URL previews keep their images this way)
and make its thumbnails with `pregenerate_thumbnails`.

Other servers' media is fetched and cached by services/media/remote.py; the same
endpoints serve it, and the admin's tools reach it (quarantine, purge_media_cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.media import thumbnailer
from ranvier.services.media.files import KeyedLocks, MediaFiles, ReceivedFile
from ranvier.services.media.remote import FetchBudget, RemoteMediaCache, Unlimited
from ranvier.services.media.thumbnailer import Box, ImageInfo, Method
from ranvier.storage.media import MediaOrder, MediaRecord, MediaStore, ThumbnailRecord
from ranvier.storage.media_remote_cache import RemoteMediaRecord

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# spec: timeout_ms defaults to 20 s and the server SHOULD cap it
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
# last_access_ts is written at most this often per media
ACCESS_RECORD_INTERVAL_MS = 60_000
QUARANTINE_BATCH = 100
_MEDIA_ID_ALPHABET = string.ascii_letters
_MEDIA_ID_LENGTH = 24

Echo = Callable[[str], None]
UserExists = Callable[[str], Awaitable[bool]]


def not_found(error: str = "Media not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def cannot_thumbnail() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")


def too_large_to_thumbnail() -> MatrixError:
    return MatrixError(413, "M_TOO_LARGE", "Content is too large to thumbnail")


def generate_media_id() -> str:
    # spec: media IDs use only A-Za-z0-9, _ and -
    return "".join(secrets.choice(_MEDIA_ID_ALPHABET) for _ in range(_MEDIA_ID_LENGTH))


def mxc_uri(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def parse_mxc(uri: Any) -> tuple[str, str] | None:
    """(server name, media ID) of an mxc:// URI, or None if it is not one."""
    if not isinstance(uri, str) or not uri.startswith("mxc://"):
        return None
    server_name, _, media_id = uri[len("mxc://") :].partition("/")
    if not server_name or not media_id or "/" in media_id:
        return None
    return server_name, media_id


@dataclass(frozen=True)
class StoredMedia:
    """Local media just stored."""

    media_id: str
    content_uri: str
    media_type: str
    length: int
    sha256: str
    upload_name: str | None
    # the image's size when it is one this server can thumbnail
    image_width: int | None = None
    image_height: int | None = None


@dataclass(frozen=True)
class MediaContent:
    """What to send for a download or a thumbnail."""

    path: Path
    content_type: str
    length: int
    # None: no filename in Content-Disposition
    filename: str | None


@dataclass(frozen=True)
class CreatedMedia:
    content_uri: str
    unused_expires_at: int


class MediaService:
    def __init__(
        self,
        config: HomeserverConfig,
        store: MediaStore,
        files: MediaFiles,
        user_exists: UserExists,
        remote: RemoteMediaCache,
    ) -> None:
        self.server_name = config.server_name
        self.remote = remote
        self.max_upload_size = config.max_upload_size
        self._max_image_pixels = config.max_image_pixels
        self._boxes = [Box(size.width, size.height, size.method) for size in config.thumbnail_sizes]
        self._dynamic_thumbnails = config.dynamic_thumbnails
        self._authenticated_media = config.enable_authenticated_media
        self._max_pending = config.max_pending_media_uploads
        self._unused_expiration_ms = config.unused_expiration_time
        self._store = store
        self.files = files
        self._user_exists = user_exists
        # media IDs created but not uploaded to, with downloads waiting for them
        self._uploaded: dict[str, asyncio.Event] = {}
        self._stopping = False
        # thumbnails being made, so concurrent requests for one make it once
        self._rendering: KeyedLocks[tuple[str, Box, bool]] = KeyedLocks()
        self._image_info: LRUCache[str, ImageInfo | None] = LRUCache(maxsize=4096)
        thumbnailer.set_pixel_limit(config.max_image_pixels)

    # --- uploading ----------------------------------------------------------------------

    async def upload(
        self,
        user_id: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None,
        upload_name: str | None,
    ) -> StoredMedia:
        """POST /upload: store the bytes under a new media ID (413 M_TOO_LARGE past
        max_upload_size, with nothing kept)."""
        received = await self.files.receive(chunks, self.max_upload_size)
        return await self._store_received(
            received,
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            upload_name=upload_name,
            user_id=user_id,
        )

    async def store_bytes(
        self,
        data: bytes,
        *,
        content_type: str,
        upload_name: str | None = None,
        user_id: str | None = None,
    ) -> StoredMedia:
        """Store bytes this server made or fetched as new local media (no size limit is
        applied here: the caller decides what it accepts). Served like any upload."""
        received = await self.files.receive_bytes(data)
        return await self._store_received(
            received, content_type=content_type, upload_name=upload_name, user_id=user_id
        )

    async def _store_received(
        self,
        received: ReceivedFile,
        *,
        content_type: str,
        upload_name: str | None,
        user_id: str | None,
    ) -> StoredMedia:
        try:
            async with self.files.locked(received.sha256):
                await self.files.commit(received)
                while True:
                    media_id = generate_media_id()
                    if await self._store.insert_media(
                        media_id,
                        user_id=user_id,
                        now_ms=now_ms(),
                        sha256=received.sha256,
                        length=received.length,
                        media_type=content_type,
                        upload_name=upload_name,
                        unused_expires_at=None,
                        authenticated=self._authenticated_media,
                    ):
                        break
        finally:
            self.files.discard(received)
        try:
            info = await self._probe(received.sha256)
        except MatrixError:
            # an image too large to thumbnail is still stored media
            info = None
        return StoredMedia(
            media_id=media_id,
            content_uri=mxc_uri(self.server_name, media_id),
            media_type=content_type,
            length=received.length,
            sha256=received.sha256,
            upload_name=upload_name,
            image_width=info.width if info else None,
            image_height=info.height if info else None,
        )

    async def create(self, user_id: str) -> CreatedMedia:
        """POST /_matrix/media/v1/create: reserve a media ID for a later upload."""
        now = now_ms()
        await self._store.delete_expired_pending(now)
        if await self._store.count_pending(user_id, now) >= self._max_pending:
            error = MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                "Too many pending media uploads; upload to the media IDs you have first",
                retry_after_ms=self._unused_expiration_ms,
            )
            raise error
        expires_at = now + self._unused_expiration_ms
        while True:
            media_id = generate_media_id()
            if await self._store.insert_media(
                media_id,
                user_id=user_id,
                now_ms=now,
                sha256=None,
                length=None,
                media_type=None,
                upload_name=None,
                unused_expires_at=expires_at,
                authenticated=self._authenticated_media,
            ):
                return CreatedMedia(mxc_uri(self.server_name, media_id), expires_at)

    async def upload_to(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        chunks: AsyncIterator[bytes],
        *,
        content_type: str | None,
        upload_name: str | None,
    ) -> None:
        """PUT /upload/{serverName}/{mediaId}: the content of a created media ID."""
        record = await self._pending_for(user_id, server_name, media_id)
        received = await self.files.receive(chunks, self.max_upload_size)
        try:
            async with self.files.locked(received.sha256):
                await self.files.commit(received)
                filled = await self._store.fill_pending(
                    record.media_id,
                    now_ms=now_ms(),
                    sha256=received.sha256,
                    length=received.length,
                    media_type=content_type or DEFAULT_CONTENT_TYPE,
                    upload_name=upload_name,
                    authenticated=self._authenticated_media,
                )
                if not filled and not await self._store.sha256_in_use(received.sha256):
                    self.files.remove(received.sha256)
        finally:
            self.files.discard(received)
        if not filled:
            # another upload to the same ID finished while this one was streaming
            await self._pending_for(user_id, server_name, media_id)
            raise cannot_overwrite()
        event = self._uploaded.pop(media_id, None)
        if event is not None:
            event.set()

    async def _pending_for(self, user_id: str, server_name: str, media_id: str) -> MediaRecord:
        if server_name != self.server_name:
            raise not_found("Unknown media ID")
        record = await self._store.get_media(media_id)
        if record is None or _expired(record):
            raise not_found("Unknown media ID")
        if record.user_id != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "You did not create this media ID")
        if record.uploaded:
            raise cannot_overwrite()
        return record

    # --- serving ------------------------------------------------------------------------

    async def download(
        self,
        server_name: str,
        media_id: str,
        *,
        authenticated: bool,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        allow_remote: bool = True,
        budget: FetchBudget | None = None,
    ) -> MediaContent:
        """The content of local media, or of another server's (fetched unless cached,
        with `allow_remote`, within the requester's `budget`). `authenticated`: asked on the
        authenticated endpoints (the legacy ones may not serve media since the freeze)."""
        if server_name != self.server_name:
            remote = await self.remote.download(
                server_name,
                media_id,
                authenticated=authenticated,
                allow_remote=allow_remote,
                timeout_ms=timeout_ms,
                budget=budget or Unlimited(),
            )
            return MediaContent(
                self.files.path_for(remote.sha256),
                remote.content_type,
                remote.length,
                remote.filename,
            )
        record = await self._servable(server_name, media_id, authenticated, timeout_ms)
        assert record.sha256 is not None and record.media_length is not None
        await self._store.touch(media_id, now_ms(), at_most_every_ms=ACCESS_RECORD_INTERVAL_MS)
        content = MediaContent(
            self.files.path_for(record.sha256),
            record.media_type or DEFAULT_CONTENT_TYPE,
            record.media_length,
            record.upload_name,
        )
        return content

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        *,
        width: int,
        height: int,
        method: Method,
        animated: bool,
        authenticated: bool,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        allow_remote: bool = True,
        budget: FetchBudget | None = None,
    ) -> MediaContent:
        if server_name != self.server_name:
            # the origin's thumbnail of the size asked, cached as it sent it
            remote = await self.remote.thumbnail(
                server_name,
                media_id,
                Box(width, height, method),
                animated=animated,
                authenticated=authenticated,
                allow_remote=allow_remote,
                timeout_ms=timeout_ms,
                budget=budget or Unlimited(),
            )
            ext = thumbnailer.extension_for(remote.content_type)
            return MediaContent(
                self.files.path_for(remote.sha256),
                remote.content_type,
                remote.length,
                f"thumbnail.{ext}",
            )
        record = await self._servable(server_name, media_id, authenticated, timeout_ms)
        assert record.sha256 is not None and record.media_length is not None
        info = await self._probe(record.sha256)
        if info is None:
            raise cannot_thumbnail()
        await self._store.touch(media_id, now_ms(), at_most_every_ms=ACCESS_RECORD_INTERVAL_MS)
        animated = animated and info.animated
        if thumbnailer.fits_within(info, width, height) and (animated or not info.animated):
            # spec: content smaller than asked is answered with the original
            ext = thumbnailer.extension_for(info.content_type)
            return MediaContent(
                self.files.path_for(record.sha256),
                info.content_type,
                record.media_length,
                f"thumbnail.{ext}",
            )
        if self._dynamic_thumbnails:
            box = Box(width, height, method)
        elif self._boxes:
            box = thumbnailer.choose_box(self._boxes, width, height, method)
        else:
            # `thumbnail_sizes: []` turns thumbnails off
            raise cannot_thumbnail()
        made = await self._thumbnail_for(record, box, animated)
        ext = thumbnailer.extension_for(made.content_type)
        return MediaContent(
            self.files.path_for(made.sha256), made.content_type, made.length, f"thumbnail.{ext}"
        )

    async def pregenerate_thumbnails(self, media_id: str) -> int:
        """Make the configured thumbnails of an image now rather than on first request
        (static ones); returns how many exist. Not an image: 0."""
        record = await self._store.get_media(media_id)
        if record is None or record.sha256 is None:
            return 0
        try:
            info = await self._probe(record.sha256)
        except MatrixError:
            return 0
        if info is None:
            return 0
        made = 0
        for box in self._boxes:
            try:
                await self._thumbnail_for(record, box, False)
                made += 1
            except MatrixError:
                break
        return made

    async def _thumbnail_for(
        self, record: MediaRecord, box: Box, animated: bool
    ) -> ThumbnailRecord:
        async with self._rendering.hold((record.media_id, box, animated)):
            found = await self._store.get_thumbnail(
                record.media_id, box.width, box.height, box.method, animated
            )
            if found is not None and self.files.exists(found.sha256):
                return found
            return await self._render(record, box, animated)

    async def _render(self, record: MediaRecord, box: Box, animated: bool) -> ThumbnailRecord:
        assert record.sha256 is not None
        try:
            rendered = await asyncio.to_thread(
                thumbnailer.render,
                self.files.path_for(record.sha256),
                box,
                animated=animated,
                max_pixels=self._max_image_pixels,
            )
        except thumbnailer.ImageTooLarge:
            raise too_large_to_thumbnail() from None
        except (thumbnailer.NotAnImage, FileNotFoundError):
            raise cannot_thumbnail() from None
        received = await self.files.receive_bytes(rendered.data)
        thumbnail = ThumbnailRecord(
            media_id=record.media_id,
            width=box.width,
            height=box.height,
            method=box.method,
            animated=animated,
            content_type=rendered.content_type,
            sha256=received.sha256,
            length=received.length,
        )
        try:
            async with self.files.locked(received.sha256):
                await self.files.commit(received)
                if not await self._store.insert_thumbnail(thumbnail, now_ms()):
                    existing = await self._store.get_thumbnail(
                        record.media_id, box.width, box.height, box.method, animated
                    )
                    if existing is not None and existing.sha256 != received.sha256:
                        # a stale row whose file vanished: point it at the new file
                        await self._store.delete_thumbnail(existing)
                        await self._store.insert_thumbnail(thumbnail, now_ms())
                    elif existing is None:
                        # the media was deleted meanwhile
                        if not await self._store.sha256_in_use(received.sha256):
                            self.files.remove(received.sha256)
                        raise not_found()
        finally:
            self.files.discard(received)
        return thumbnail

    async def _servable(
        self, server_name: str, media_id: str, authenticated: bool, timeout_ms: int
    ) -> MediaRecord:
        record = await self._store.get_media(media_id)
        if record is not None and not record.uploaded and not _expired(record):
            record = await self._wait_for_upload(media_id, timeout_ms)
        if record is None or not record.uploaded:
            raise not_found()
        if record.quarantined_by is not None:
            raise not_found()
        if record.authenticated and not authenticated:
            # spec: media from after the freeze is served only on the authenticated endpoints
            raise not_found()
        return record

    async def _wait_for_upload(self, media_id: str, timeout_ms: int) -> MediaRecord:
        event = self._uploaded.setdefault(media_id, asyncio.Event())
        try:
            return await self._wait_on(event, media_id, timeout_ms)
        finally:
            # nobody may ever upload: do not keep the event (a waiter still holding it
            # falls back to looking every second)
            if not event.is_set() and self._uploaded.get(media_id) is event:
                del self._uploaded[media_id]

    def stop_waiting(self) -> None:
        """Shutdown: downloads waiting for an upload answer now, as if their wait ran out."""
        self._stopping = True
        for event in self._uploaded.values():
            event.set()

    async def _wait_on(self, event: asyncio.Event, media_id: str, timeout_ms: int) -> MediaRecord:
        timeout = max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            record = await self._store.get_media(media_id)
            if record is None or record.uploaded or _expired(record):
                if record is None or _expired(record):
                    raise not_found()
                return record
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self._stopping:
                raise MatrixError(
                    504, "M_NOT_YET_UPLOADED", "The content has not yet been uploaded"
                )
            # the event covers uploads to this process; the bounded wait, uploads elsewhere
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await event.wait()

    async def _probe(self, sha256: str) -> ImageInfo | None:
        if sha256 in self._image_info:
            return self._image_info[sha256]
        try:
            info: ImageInfo | None = await asyncio.to_thread(
                thumbnailer.probe, self.files.path_for(sha256), self._max_image_pixels
            )
        except thumbnailer.ImageTooLarge:
            raise too_large_to_thumbnail() from None
        except (thumbnailer.NotAnImage, FileNotFoundError):
            info = None
        self._image_info[sha256] = info
        return info

    def config_response(self) -> dict[str, Any]:
        return {"m.upload.size": self.max_upload_size}

    # --- the admin's tools --------------------------------------------------------------

    def check_local_server(self, server_name: str) -> None:
        if server_name != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Only local media can be managed here")

    def _local_media_id(self, server_name: str, media_id: str) -> str:
        self.check_local_server(server_name)
        return media_id

    async def get_record(self, server_name: str, media_id: str) -> MediaRecord | RemoteMediaRecord:
        if server_name != self.server_name:
            return await self.remote.get_record(server_name, media_id)
        record = await self._store.get_media(media_id)
        if record is None:
            raise not_found()
        return record

    async def quarantine(self, server_name: str, media_id: str, quarantined_by: str) -> None:
        if server_name != self.server_name:
            await self.remote.set_quarantined(server_name, media_id, quarantined_by)
        else:
            await self._store.set_quarantined([media_id], quarantined_by)

    async def unquarantine(self, server_name: str, media_id: str) -> None:
        if server_name != self.server_name:
            await self.remote.set_quarantined(server_name, media_id, None)
        else:
            await self._store.set_quarantined([media_id], None)

    async def purge_media_cache(self, before_ts: int) -> int:
        """Forget other servers' media last served before `before_ts`; how many."""
        return await self.remote.purge(before_ts)

    async def quarantine_room(
        self, room_id: str, quarantined_by: str, echo: Echo | None = None
    ) -> int:
        """Quarantine the media the room's events point at, local and (cached) remote, as
        Synapse does; how many were."""
        local, remote = await self.room_media(room_id)
        media_ids = [parsed[1] for parsed in map(parse_mxc, local) if parsed is not None]
        count = await self._quarantine_all(media_ids, quarantined_by, echo)
        keys = [parsed for parsed in map(parse_mxc, remote) if parsed is not None]
        return count + await self.remote.quarantine_many(keys, quarantined_by)

    async def quarantine_user(
        self, user_id: str, quarantined_by: str, echo: Echo | None = None
    ) -> int:
        """Quarantine everything the user uploaded; how many were."""
        media_ids = await self._store.user_media_ids(user_id)
        return await self._quarantine_all(media_ids, quarantined_by, echo)

    async def _quarantine_all(
        self, media_ids: list[str], quarantined_by: str, echo: Echo | None
    ) -> int:
        count = 0
        for start in range(0, len(media_ids), QUARANTINE_BATCH):
            batch = media_ids[start : start + QUARANTINE_BATCH]
            count += await self._store.set_quarantined(batch, quarantined_by)
            if echo is not None:
                echo(f"quarantined {start + len(batch)}/{len(media_ids)}")
        return count

    async def set_protected(self, media_id: str, protected: bool) -> None:
        if not await self._store.set_protected(media_id, protected):
            raise not_found()

    async def room_media(self, room_id: str) -> tuple[list[str], list[str]]:
        """The mxc URIs the room's events use (content.url, content.info.thumbnail_url and
        content.file.url of encrypted attachments), local and remote, in order found."""
        if not await self._store.room_exists(room_id):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        local: dict[str, None] = {}
        remote: dict[str, None] = {}
        for content in await self._store.room_event_contents(room_id):
            for uri in _mxc_uris_of(content):
                parsed = parse_mxc(uri)
                if parsed is None:
                    continue
                (local if parsed[0] == self.server_name else remote)[uri] = None
        return list(local), list(remote)

    async def delete(self, server_name: str, media_id: str) -> None:
        """Delete local media and its thumbnails (404 if unknown)."""
        if not await self._delete(self._local_media_id(server_name, media_id)):
            raise not_found()

    async def _delete(self, media_id: str) -> bool:
        existed, hashes = await self._store.delete_media(media_id)
        for sha256 in hashes:
            async with self.files.locked(sha256):
                if not await self._store.sha256_in_use(sha256):
                    await asyncio.to_thread(self.files.remove, sha256)
        return existed

    async def delete_old_media(
        self,
        *,
        before_ts: int,
        size_gt: int = 0,
        keep_profiles: bool = True,
        echo: Echo | None = None,
    ) -> list[str]:
        """Delete local media last used before `before_ts` and bigger than `size_gt`
        bytes, except protected and quarantined media and (with `keep_profiles`) users'
        and rooms' avatars. Returns the deleted media IDs."""
        keep: set[str] = set()
        if keep_profiles:
            urls = set(await self._store.profile_avatar_urls())
            urls |= {
                content["url"]
                for content in await self._store.room_avatar_contents()
                if isinstance(content.get("url"), str)
            }
            keep = {
                parsed[1]
                for parsed in map(parse_mxc, urls)
                if parsed is not None and parsed[0] == self.server_name
            }
        old = await self._store.find_old_media(
            before_ts=before_ts, size_gt=size_gt, keep_media_ids=keep
        )
        return await self._delete_all([record.media_id for record in old], echo)

    async def _delete_all(self, media_ids: Iterable[str], echo: Echo | None) -> list[str]:
        ids = list(media_ids)
        deleted: list[str] = []
        for done, media_id in enumerate(ids, start=1):
            if await self._delete(media_id):
                deleted.append(media_id)
            if echo is not None:
                echo(f"deleted {done}/{len(ids)}: {media_id}")
        return deleted

    async def list_user_media(
        self, user_id: str, *, offset: int, limit: int, order_by: MediaOrder, backwards: bool
    ) -> tuple[list[MediaRecord], int]:
        await self._require_local_user(user_id)
        return await self._store.list_user_media(
            user_id, offset=offset, limit=limit, order_by=order_by, backwards=backwards
        )

    async def delete_user_media(
        self,
        user_id: str,
        *,
        offset: int,
        limit: int,
        order_by: MediaOrder,
        backwards: bool,
        echo: Echo | None = None,
    ) -> list[str]:
        page, _total = await self.list_user_media(
            user_id, offset=offset, limit=limit, order_by=order_by, backwards=backwards
        )
        return await self._delete_all([record.media_id for record in page], echo)

    async def _require_local_user(self, user_id: str) -> None:
        if not user_id.endswith(":" + self.server_name):
            raise MatrixError(400, "M_INVALID_PARAM", "Can only look up local users")
        if not await self._user_exists(user_id):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown user")


def cannot_overwrite() -> MatrixError:
    return MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")


def _expired(record: MediaRecord) -> bool:
    return (
        record.sha256 is None
        and record.unused_expires_at is not None
        and record.unused_expires_at <= now_ms()
    )


def _mxc_uris_of(content: dict[str, Any]) -> list[str]:
    uris: list[Any] = [content.get("url")]
    info = content.get("info")
    if isinstance(info, dict):
        uris.append(info.get("thumbnail_url"))
        thumbnail_file = info.get("thumbnail_file")
        if isinstance(thumbnail_file, dict):
            uris.append(thumbnail_file.get("url"))
    file = content.get("file")
    if isinstance(file, dict):
        uris.append(file.get("url"))
    return [uri for uri in uris if isinstance(uri, str)]
