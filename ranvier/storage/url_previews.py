"""url_previews: the OpenGraph answer for a URL as fetched at a time, until it expires.

Rows are keyed by the URL's SHA-256 and the time of the fetch, so the history of a URL is
kept while its answers are fresh and a request with `ts` can be answered as of then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

url_previews = Table(
    "url_previews",
    metadata,
    Column("url_hash", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("download_ts", BigInteger, nullable=False),
    Column("expires_ts", BigInteger, nullable=False),
    Column("response_code", Integer, nullable=False),
    Column("etag", Text, nullable=True),
    Column("og", Text, nullable=False),
    Column("media_id", Text, nullable=True),
    PrimaryKeyConstraint("url_hash", "download_ts"),
    Index("ix_url_previews_expires_ts", "expires_ts"),
)


@dataclass(frozen=True)
class CachedPreview:
    url: str
    download_ts: int
    expires_ts: int
    response_code: int
    etag: str | None
    og: str
    media_id: str | None


_COLUMNS = [getattr(url_previews.c, name) for name in CachedPreview.__dataclass_fields__]


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


class UrlPreviewStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_preview(self, url: str, ts: int) -> CachedPreview | None:
        """The newest answer fetched at or before `ts`; if every answer is newer than
        `ts`, the oldest one (the spec lets a server answer with a newer version)."""
        key = url_hash(url)
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS)
                    .where(url_previews.c.url_hash == key, url_previews.c.download_ts <= ts)
                    .order_by(url_previews.c.download_ts.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                row = (
                    await conn.execute(
                        select(*_COLUMNS)
                        .where(url_previews.c.url_hash == key, url_previews.c.download_ts > ts)
                        .order_by(url_previews.c.download_ts.asc())
                        .limit(1)
                    )
                ).first()
        if row is None or row.url != url:
            return None
        return CachedPreview(**row._asdict())

    async def store_preview(self, preview: CachedPreview) -> None:
        """Record an answer and drop those that expired before it was fetched."""
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(url_previews).where(url_previews.c.expires_ts < preview.download_ts)
            )
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(url_previews).values(url_hash=url_hash(preview.url), **vars(preview))
                    )
            except IntegrityError:
                # the same URL fetched twice in one millisecond: either answer will do
                pass
