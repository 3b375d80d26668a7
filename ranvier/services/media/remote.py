"""Other servers' media, fetched for our users and cached (spec: client-server-api
"Content repository"; server-server-api "Content Repository").

A file is fetched once from its origin over the authenticated federation endpoints, or,
from a server that lacks them (404/405 M_UNRECOGNIZED), over the legacy unauthenticated
media endpoints with allow_remote=false; then served from the cache until the admin purges
it (purge_media_cache). Concurrent requests for one uncached file wait for one fetch.
Failures are answered as Synapse answers them: the origin unreachable or failing, 502; the
file larger than max_upload_size, 502 M_TOO_LARGE; unknown there, 404.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol, TypeVar
from urllib.parse import quote

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.federation.client import (
    DestinationUnreachable,
    FileTooLarge,
    Query,
    RemoteFile,
    RemoteRequestFailed,
    Sink,
    is_unknown_endpoint,
)
from ranvier.services.media.files import KeyedLocks, MediaFiles, ReceivedFile
from ranvier.services.media.thumbnailer import Box
from ranvier.storage.media_remote_cache import (
    RemoteMediaCacheStore,
    RemoteMediaRecord,
    RemoteThumbnailRecord,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_TIMEOUT_MS = 60_000
# last_access_ts is written at most this often per cached file
ACCESS_RECORD_INTERVAL_MS = 60_000


class FileFetcher(Protocol):
    """FederationClient.get_file, which tests may replace."""

    async def get_file(
        self,
        destination: str,
        path: str,
        *,
        query: Query | None = None,
        authenticated: bool,
        multipart: bool,
        max_size: int,
        timeout: float,
        sink: Sink[T],
    ) -> RemoteFile[T]: ...


class FetchBudget(Protocol):
    """The requester's allowance of fetched bytes (remote_media_download_*): `check`
    raises 429 M_LIMIT_EXCEEDED when it is spent; `spend` counts a fetch."""

    def check(self) -> None: ...

    def spend(self, length: int) -> None: ...


class NoFetching:
    """For tools that run without federation (the command line): nothing is fetched."""

    async def get_file(
        self,
        destination: str,
        path: str,
        *,
        query: Query | None = None,
        authenticated: bool,
        multipart: bool,
        max_size: int,
        timeout: float,
        sink: Sink[T],
    ) -> RemoteFile[T]:
        raise DestinationUnreachable(destination, "this tool fetches no remote media")


class Unlimited:
    def check(self) -> None:
        pass

    def spend(self, length: int) -> None:
        pass


@dataclass(frozen=True)
class RemoteContent:
    sha256: str
    content_type: str
    length: int
    filename: str | None


def media_not_found() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "Media not found")


def fetch_failed() -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", "Failed to fetch remote media")


def filename_of(content_disposition: str | None) -> str | None:
    """The file name a Content-Disposition header gives (filename* or filename)."""
    if not content_disposition:
        return None
    message = EmailMessage()
    try:
        message["Content-Disposition"] = content_disposition
        name = message.get_filename()
    except (ValueError, TypeError, IndexError):
        return None
    return name or None


class RemoteMediaCache:
    def __init__(
        self,
        *,
        store: RemoteMediaCacheStore,
        files: MediaFiles,
        fetcher: FileFetcher,
        max_size: int,
        prevent_downloads_from: list[str],
        authenticated_media: bool,
        sha256_in_use: Callable[[str], Awaitable[bool]],
    ) -> None:
        # whether a file is used by local or remote media (MediaStore's, which sees both)
        self._sha256_in_use = sha256_in_use
        self._store = store
        self._files = files
        self._fetcher = fetcher
        self._max_size = max_size
        self._prevented = frozenset(name.lower() for name in prevent_downloads_from)
        self._authenticated_media = authenticated_media
        self._fetching: KeyedLocks[tuple[str, ...]] = KeyedLocks()

    # --- serving ------------------------------------------------------------------------

    async def download(
        self,
        origin: str,
        media_id: str,
        *,
        authenticated: bool,
        allow_remote: bool,
        timeout_ms: int,
        budget: FetchBudget,
    ) -> RemoteContent:
        record = await self._cached(origin, media_id, authenticated)
        if record is None:
            self._may_fetch(origin, authenticated, allow_remote, budget)
            async with self._fetching.hold((origin, media_id)):
                # another request may have fetched it while this one waited
                record = await self._cached(origin, media_id, authenticated)
                if record is None:
                    record = await self._fetch_media(origin, media_id, timeout_ms, budget)
        await self._store.touch(
            origin, media_id, now_ms(), at_most_every_ms=ACCESS_RECORD_INTERVAL_MS
        )
        return RemoteContent(
            record.sha256, record.media_type, record.media_length, record.upload_name
        )

    async def thumbnail(
        self,
        origin: str,
        media_id: str,
        box: Box,
        *,
        animated: bool,
        authenticated: bool,
        allow_remote: bool,
        timeout_ms: int,
        budget: FetchBudget,
    ) -> RemoteContent:
        media = await self._store.get(origin, media_id)
        if media is not None and (
            media.quarantined_by is not None or (media.authenticated and not authenticated)
        ):
            raise media_not_found()
        found = await self._cached_thumbnail(origin, media_id, box, animated)
        if found is None:
            self._may_fetch(origin, authenticated, allow_remote, budget)
            key = (origin, media_id, str(box.width), str(box.height), box.method, str(animated))
            async with self._fetching.hold(key):
                found = await self._cached_thumbnail(origin, media_id, box, animated)
                if found is None:
                    found = await self._fetch_thumbnail(
                        origin, media_id, box, animated, timeout_ms, budget
                    )
        if media is not None:
            await self._store.touch(
                origin, media_id, now_ms(), at_most_every_ms=ACCESS_RECORD_INTERVAL_MS
            )
        return RemoteContent(found.sha256, found.content_type, found.length, None)

    async def _cached(
        self, origin: str, media_id: str, authenticated: bool
    ) -> RemoteMediaRecord | None:
        record = await self._store.get(origin, media_id)
        if record is None:
            return None
        if record.quarantined_by is not None:
            raise media_not_found()
        if record.authenticated and not authenticated:
            # spec: media fetched since the freeze is served only on the authenticated paths
            raise media_not_found()
        if not self._files.exists(record.sha256):
            # the file went missing from the store: forget the row and fetch again
            await self._forget(origin, media_id)
            return None
        return record

    async def _cached_thumbnail(
        self, origin: str, media_id: str, box: Box, animated: bool
    ) -> RemoteThumbnailRecord | None:
        found = await self._store.get_thumbnail(
            origin, media_id, box.width, box.height, box.method, animated
        )
        if found is None or not self._files.exists(found.sha256):
            return None
        return found

    def _may_fetch(
        self, origin: str, authenticated: bool, allow_remote: bool, budget: FetchBudget
    ) -> None:
        if not allow_remote:
            raise media_not_found()
        if origin.lower() in self._prevented:
            # as Synapse: prevent_media_downloads_from looks like media that does not exist
            raise media_not_found()
        if not authenticated and self._authenticated_media:
            # whatever is fetched now is media from after the freeze, for the v1 paths only
            raise media_not_found()
        budget.check()

    # --- fetching -----------------------------------------------------------------------

    async def _fetch_media(
        self, origin: str, media_id: str, timeout_ms: int, budget: FetchBudget
    ) -> RemoteMediaRecord:
        quoted = quote(media_id, safe="")
        fetched = await self._fetch(
            origin,
            f"/_matrix/federation/v1/media/download/{quoted}",
            f"/_matrix/media/v3/download/{quote(origin, safe='')}/{quoted}",
            {},
            timeout_ms,
        )
        budget.spend(fetched.length)
        sha256 = await self._keep(fetched.kept)
        now = now_ms()
        record = RemoteMediaRecord(
            media_origin=origin,
            media_id=media_id,
            media_type=fetched.content_type or DEFAULT_CONTENT_TYPE,
            media_length=fetched.length,
            upload_name=filename_of(fetched.content_disposition),
            sha256=sha256,
            created_ts=now,
            last_access_ts=now,
            quarantined_by=None,
            authenticated=self._authenticated_media,
        )
        if not await self._store.insert(record):
            # another process cached it meanwhile: serve its row
            existing = await self._store.get(origin, media_id)
            if existing is not None:
                return existing
        return record

    async def _fetch_thumbnail(
        self,
        origin: str,
        media_id: str,
        box: Box,
        animated: bool,
        timeout_ms: int,
        budget: FetchBudget,
    ) -> RemoteThumbnailRecord:
        quoted = quote(media_id, safe="")
        params = {
            "width": str(box.width),
            "height": str(box.height),
            "method": box.method,
            "animated": "true" if animated else "false",
        }
        fetched = await self._fetch(
            origin,
            f"/_matrix/federation/v1/media/thumbnail/{quoted}",
            f"/_matrix/media/v3/thumbnail/{quote(origin, safe='')}/{quoted}",
            params,
            timeout_ms,
        )
        budget.spend(fetched.length)
        sha256 = await self._keep(fetched.kept)
        thumbnail = RemoteThumbnailRecord(
            media_origin=origin,
            media_id=media_id,
            width=box.width,
            height=box.height,
            method=box.method,
            animated=animated,
            content_type=fetched.content_type or DEFAULT_CONTENT_TYPE,
            sha256=sha256,
            length=fetched.length,
        )
        replaced = await self._store.put_thumbnail(thumbnail, now_ms())
        if replaced is not None:
            await self._remove_if_unused(replaced)
        return thumbnail

    async def _fetch(
        self,
        origin: str,
        federation_path: str,
        legacy_path: str,
        params: dict[str, str],
        timeout_ms: int,
    ) -> RemoteFile[ReceivedFile]:
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        query = {**params, "timeout_ms": str(timeout_ms)}
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        try:
            try:
                return await self._fetcher.get_file(
                    origin,
                    federation_path,
                    query=query,
                    authenticated=True,
                    multipart=True,
                    max_size=self._max_size,
                    timeout=timeout_ms / 1000,
                    sink=self._receive,
                )
            except RemoteRequestFailed as exc:
                if not is_unknown_endpoint(exc):
                    raise
                logger.info("%s lacks the federation media endpoints: trying the legacy", origin)
            legacy_query = {**query, "allow_remote": "false", "allow_redirect": "true"}
            return await self._fetcher.get_file(
                origin,
                legacy_path,
                query=legacy_query,
                authenticated=False,
                multipart=False,
                max_size=self._max_size,
                timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                sink=self._receive,
            )
        except FileTooLarge:
            raise MatrixError(
                502, "M_TOO_LARGE", f"Requested file is larger than {self._max_size} bytes"
            ) from None
        except RemoteRequestFailed as exc:
            logger.info("Fetching media from %s failed: %s", origin, exc)
            if exc.status == 404:
                raise media_not_found() from None
            if exc.status == 504 and exc.errcode == "M_NOT_YET_UPLOADED":
                raise MatrixError(
                    504, "M_NOT_YET_UPLOADED", "The content has not yet been uploaded"
                ) from None
            raise fetch_failed() from None
        except DestinationUnreachable as exc:
            logger.info("Fetching media from %s failed: %s", origin, exc)
            raise fetch_failed() from None

    async def _receive(self, chunks: AsyncIterator[bytes]) -> ReceivedFile:
        # written to a temporary file in the store as it arrives; the limit is the
        # fetcher's (FileTooLarge), checked before any chunk reaches here
        return await self._files.receive(chunks, self._max_size)

    async def _keep(self, received: ReceivedFile) -> str:
        """Put a fetched file in place under its hash."""
        try:
            async with self._files.locked(received.sha256):
                await self._files.commit(received)
        finally:
            self._files.discard(received)
        return received.sha256

    # --- the admin's tools --------------------------------------------------------------

    async def get_record(self, origin: str, media_id: str) -> RemoteMediaRecord:
        record = await self._store.get(origin, media_id)
        if record is None:
            raise media_not_found()
        return record

    async def set_quarantined(self, origin: str, media_id: str, by: str | None) -> int:
        return await self._store.set_quarantined([(origin, media_id)], by)

    async def quarantine_many(self, keys: list[tuple[str, str]], by: str) -> int:
        """Quarantine the cached media of these (origin, media ID); how many were."""
        return await self._store.set_quarantined(keys, by)

    async def purge(self, before_ts: int) -> int:
        """Forget cached media last served before `before_ts` (not quarantined media,
        which must stay known to stay refused) and remove the files nothing else uses;
        how many were forgotten."""
        unused = await self._store.find_unused_since(before_ts)
        # thumbnails of media never fetched whole have no last use of their own: their age
        unused += await self._store.find_thumbnails_alone_since(before_ts)
        for origin, media_id in unused:
            await self._forget(origin, media_id)
        return len(unused)

    async def _forget(self, origin: str, media_id: str) -> None:
        for sha256 in await self._store.delete(origin, media_id):
            await self._remove_if_unused(sha256)

    async def _remove_if_unused(self, sha256: str) -> None:
        async with self._files.locked(sha256):
            if not await self._sha256_in_use(sha256):
                await asyncio.to_thread(self._files.remove, sha256)


def remote_media_cache(
    config: HomeserverConfig,
    store: RemoteMediaCacheStore,
    files: MediaFiles,
    fetcher: FileFetcher,
    sha256_in_use: Callable[[str], Awaitable[bool]],
) -> RemoteMediaCache:
    return RemoteMediaCache(
        store=store,
        files=files,
        fetcher=fetcher,
        max_size=config.max_upload_size,
        prevent_downloads_from=config.prevent_media_downloads_from,
        authenticated_media=config.enable_authenticated_media,
        sha256_in_use=sha256_in_use,
    )
