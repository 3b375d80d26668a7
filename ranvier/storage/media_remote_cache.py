"""remote_media_cache and remote_media_cache_thumbnails: other servers' media (and the
thumbnails asked of them) fetched for our users, keyed by (origin, media ID). The bytes are
files named by their SHA-256 in the same store as local media (services/media/files.py);
storage/media.py counts these rows when deciding whether a file is still used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    false,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

remote_media_cache = Table(
    "remote_media_cache",
    metadata,
    Column("media_origin", Text, nullable=False),
    Column("media_id", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("media_length", BigInteger, nullable=False),
    Column("upload_name", Text, nullable=True),
    Column("sha256", Text, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("last_access_ts", BigInteger, nullable=False),
    Column("quarantined_by", Text, nullable=True),
    Column("authenticated", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("media_origin", "media_id"),
    Index("ix_remote_media_cache_sha256", "sha256"),
    Index("ix_remote_media_cache_last_access_ts", "last_access_ts"),
)

remote_media_cache_thumbnails = Table(
    "remote_media_cache_thumbnails",
    metadata,
    Column("media_origin", Text, nullable=False),
    Column("media_id", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("method", Text, nullable=False),
    Column("animated", Boolean, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("media_origin", "media_id", "width", "height", "method", "animated"),
    Index("ix_remote_media_cache_thumbnails_sha256", "sha256"),
)


@dataclass(frozen=True)
class RemoteMediaRecord:
    media_origin: str
    media_id: str
    media_type: str
    media_length: int
    upload_name: str | None
    sha256: str
    created_ts: int
    last_access_ts: int
    quarantined_by: str | None
    authenticated: bool


@dataclass(frozen=True)
class RemoteThumbnailRecord:
    media_origin: str
    media_id: str
    width: int
    height: int
    method: str
    animated: bool
    content_type: str
    sha256: str
    length: int


_MEDIA_COLUMNS = [remote_media_cache.c[f] for f in RemoteMediaRecord.__dataclass_fields__]
_THUMBNAIL_COLUMNS = [
    remote_media_cache_thumbnails.c[f] for f in RemoteThumbnailRecord.__dataclass_fields__
]


def _key(origin: str, media_id: str) -> Any:
    c = remote_media_cache.c
    return (c.media_origin == origin) & (c.media_id == media_id)


class RemoteMediaCacheStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, origin: str, media_id: str) -> RemoteMediaRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(*_MEDIA_COLUMNS).where(_key(origin, media_id)))
            ).first()
        return None if row is None else RemoteMediaRecord(**row._mapping)

    async def insert(self, record: RemoteMediaRecord) -> bool:
        """False if another process cached the same media meanwhile."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(insert(remote_media_cache).values(**record.__dict__))
        except IntegrityError:
            return False
        return True

    async def touch(
        self, origin: str, media_id: str, now_ms: int, *, at_most_every_ms: int
    ) -> None:
        c = remote_media_cache.c
        async with self._db.transaction() as conn:
            await conn.execute(
                update(remote_media_cache)
                .where(_key(origin, media_id), c.last_access_ts < now_ms - at_most_every_ms)
                .values(last_access_ts=now_ms)
            )

    async def set_quarantined(
        self, keys: Sequence[tuple[str, str]], quarantined_by: str | None
    ) -> int:
        if not keys:
            return 0
        c = remote_media_cache.c
        in_keys = tuple_(c.media_origin, c.media_id).in_(list(keys))
        changes = c.quarantined_by.is_(None) if quarantined_by else c.quarantined_by.is_not(None)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(remote_media_cache)
                .where(in_keys, changes)
                .values(quarantined_by=quarantined_by)
            )
        return result.rowcount

    async def get_thumbnail(
        self, origin: str, media_id: str, width: int, height: int, method: str, animated: bool
    ) -> RemoteThumbnailRecord | None:
        t = remote_media_cache_thumbnails.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(*_THUMBNAIL_COLUMNS).where(
                        t.media_origin == origin,
                        t.media_id == media_id,
                        t.width == width,
                        t.height == height,
                        t.method == method,
                        t.animated == animated,
                    )
                )
            ).first()
        return None if row is None else RemoteThumbnailRecord(**row._mapping)

    async def put_thumbnail(self, thumbnail: RemoteThumbnailRecord, now_ms: int) -> str | None:
        """Record a fetched thumbnail, replacing one of the same size (whose file went
        missing, or that another process fetched meanwhile); the hash of the file the
        replaced row used, if another."""
        t = remote_media_cache_thumbnails.c
        same = (
            (t.media_origin == thumbnail.media_origin)
            & (t.media_id == thumbnail.media_id)
            & (t.width == thumbnail.width)
            & (t.height == thumbnail.height)
            & (t.method == thumbnail.method)
            & (t.animated == thumbnail.animated)
        )
        async with self._db.transaction() as conn:
            replaced = await conn.scalar(select(t.sha256).where(same))
            await conn.execute(delete(remote_media_cache_thumbnails).where(same))
            await conn.execute(
                insert(remote_media_cache_thumbnails).values(
                    **thumbnail.__dict__, created_ts=now_ms
                )
            )
        return replaced if replaced != thumbnail.sha256 else None

    async def find_thumbnails_alone_since(self, before_ts: int) -> list[tuple[str, str]]:
        """(origin, media ID) of thumbnails fetched before `before_ts` of media that is not
        cached itself (a client asked only for thumbnails of it)."""
        t = remote_media_cache_thumbnails.c
        c = remote_media_cache.c
        cached = select(c.media_id).where(
            c.media_origin == t.media_origin, c.media_id == t.media_id
        )
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(t.media_origin, t.media_id)
                .where(t.created_ts < before_ts, ~cached.exists())
                .group_by(t.media_origin, t.media_id)
                .order_by(t.media_origin, t.media_id)
            )
            return [(row.media_origin, row.media_id) for row in rows]

    async def find_unused_since(self, before_ts: int) -> list[tuple[str, str]]:
        """Cached media (not quarantined) last served before `before_ts`; thumbnails
        count as use of their media, as they touch it."""
        c = remote_media_cache.c
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(c.media_origin, c.media_id)
                .where(c.last_access_ts < before_ts, c.quarantined_by.is_(None))
                .order_by(c.last_access_ts, c.media_origin, c.media_id)
            )
            return [(row.media_origin, row.media_id) for row in rows]

    async def delete(self, origin: str, media_id: str) -> set[str]:
        """Forget cached media and its thumbnails; the hashes of the files they used."""
        t = remote_media_cache_thumbnails.c
        thumbs = (t.media_origin == origin) & (t.media_id == media_id)
        async with self._db.transaction() as conn:
            hashes = set((await conn.execute(select(t.sha256).where(thumbs))).scalars().all())
            own = await conn.scalar(
                select(remote_media_cache.c.sha256).where(_key(origin, media_id))
            )
            await conn.execute(delete(remote_media_cache_thumbnails).where(thumbs))
            await conn.execute(delete(remote_media_cache).where(_key(origin, media_id)))
        if own is not None:
            hashes.add(own)
        return hashes


def uses_of_sha256(sha256: str) -> list[Any]:
    """Selects of the remote rows using a file, for storage/media.py's `sha256_in_use`."""
    return [
        select(remote_media_cache.c.media_id).where(remote_media_cache.c.sha256 == sha256),
        select(remote_media_cache_thumbnails.c.media_id).where(
            remote_media_cache_thumbnails.c.sha256 == sha256
        ),
    ]
