"""local_media and local_media_thumbnails: what each local media ID holds and the
thumbnails made of it. The bytes are files named by their SHA-256 (services/media/files.py);
these rows say which media ID and which thumbnail use which file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    asc,
    delete,
    desc,
    false,
    func,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.media_remote_cache import uses_of_sha256
from ranvier.storage.metadata import metadata
from ranvier.storage.profiles import profiles
from ranvier.storage.rooms import rooms

local_media = Table(
    "local_media",
    metadata,
    Column("media_id", Text, primary_key=True),
    Column("user_id", Text, nullable=True),
    Column("created_ts", BigInteger, nullable=False),
    Column("sha256", Text, nullable=True),
    Column("media_length", BigInteger, nullable=True),
    Column("media_type", Text, nullable=True),
    Column("upload_name", Text, nullable=True),
    Column("unused_expires_at", BigInteger, nullable=True),
    Column("last_access_ts", BigInteger, nullable=True),
    Column("quarantined_by", Text, nullable=True),
    Column("safe_from_quarantine", Boolean, nullable=False, server_default=false()),
    Column("authenticated", Boolean, nullable=False, server_default=false()),
    Index("ix_local_media_user_id_created_ts", "user_id", "created_ts"),
    Index("ix_local_media_sha256", "sha256"),
)

local_media_thumbnails = Table(
    "local_media_thumbnails",
    metadata,
    Column(
        "media_id",
        Text,
        ForeignKey("local_media.media_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("method", Text, nullable=False),
    Column("animated", Boolean, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("media_id", "width", "height", "method", "animated"),
    Index("ix_local_media_thumbnails_sha256", "sha256"),
)


@dataclass(frozen=True)
class MediaRecord:
    media_id: str
    user_id: str | None
    created_ts: int
    # None while a created media ID waits for its upload
    sha256: str | None
    media_length: int | None
    media_type: str | None
    upload_name: str | None
    unused_expires_at: int | None
    last_access_ts: int | None
    quarantined_by: str | None
    safe_from_quarantine: bool
    authenticated: bool

    @property
    def uploaded(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class ThumbnailRecord:
    media_id: str
    width: int
    height: int
    method: str
    animated: bool
    content_type: str
    sha256: str
    length: int


_MEDIA_COLUMNS = [getattr(local_media.c, name) for name in MediaRecord.__dataclass_fields__]
_THUMBNAIL_COLUMNS = [
    getattr(local_media_thumbnails.c, name) for name in ThumbnailRecord.__dataclass_fields__
]

# the admin API's `order_by` values (Synapse's), each a column of local_media
MediaOrder = Literal[
    "media_id",
    "upload_name",
    "created_ts",
    "last_access_ts",
    "media_length",
    "media_type",
    "quarantined_by",
    "safe_from_quarantine",
]
MEDIA_ORDER_VALUES: tuple[MediaOrder, ...] = get_args(MediaOrder)


def _media(row: Any) -> MediaRecord:
    return MediaRecord(**row._mapping)


class MediaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- writing media ------------------------------------------------------------------

    async def insert_media(
        self,
        media_id: str,
        *,
        user_id: str | None,
        now_ms: int,
        sha256: str | None,
        length: int | None,
        media_type: str | None,
        upload_name: str | None,
        unused_expires_at: int | None,
        authenticated: bool,
    ) -> bool:
        """A new media ID (with its content, or reserved without); False if it is taken."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    insert(local_media).values(
                        media_id=media_id,
                        user_id=user_id,
                        created_ts=now_ms,
                        sha256=sha256,
                        media_length=length,
                        media_type=media_type,
                        upload_name=upload_name,
                        unused_expires_at=unused_expires_at,
                        last_access_ts=now_ms,
                        authenticated=authenticated,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def count_pending(self, user_id: str, now_ms: int) -> int:
        """Media IDs the user created, not yet uploaded to and not yet expired."""
        async with self._db.read() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(local_media)
                .where(
                    local_media.c.user_id == user_id,
                    local_media.c.sha256.is_(None),
                    local_media.c.unused_expires_at > now_ms,
                )
            )
        return int(count or 0)

    async def delete_expired_pending(self, now_ms: int) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(local_media).where(
                    local_media.c.sha256.is_(None), local_media.c.unused_expires_at <= now_ms
                )
            )
        return result.rowcount

    async def fill_pending(
        self,
        media_id: str,
        *,
        now_ms: int,
        sha256: str,
        length: int,
        media_type: str,
        upload_name: str | None,
        authenticated: bool,
    ) -> bool:
        """Give a created media ID its content; False if it has some already (or expired),
        so two uploads to one ID cannot both succeed."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(local_media)
                .where(
                    local_media.c.media_id == media_id,
                    local_media.c.sha256.is_(None),
                    local_media.c.unused_expires_at > now_ms,
                )
                .values(
                    sha256=sha256,
                    media_length=length,
                    media_type=media_type,
                    upload_name=upload_name,
                    unused_expires_at=None,
                    created_ts=now_ms,
                    last_access_ts=now_ms,
                    authenticated=authenticated,
                )
            )
        return result.rowcount == 1

    async def get_media(self, media_id: str) -> MediaRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(*_MEDIA_COLUMNS).where(local_media.c.media_id == media_id)
                )
            ).first()
        return None if row is None else _media(row)

    async def touch(self, media_id: str, now_ms: int, *, at_most_every_ms: int) -> None:
        """Record an access (for deleting media unused since a date), at most once per
        `at_most_every_ms`, so that serving a popular file is not a write per request."""
        async with self._db.transaction() as conn:
            await conn.execute(
                update(local_media)
                .where(
                    local_media.c.media_id == media_id,
                    or_(
                        local_media.c.last_access_ts.is_(None),
                        local_media.c.last_access_ts < now_ms - at_most_every_ms,
                    ),
                )
                .values(last_access_ts=now_ms)
            )

    # --- thumbnails ---------------------------------------------------------------------

    async def get_thumbnail(
        self, media_id: str, width: int, height: int, method: str, animated: bool
    ) -> ThumbnailRecord | None:
        t = local_media_thumbnails.c
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(*_THUMBNAIL_COLUMNS).where(
                        t.media_id == media_id,
                        t.width == width,
                        t.height == height,
                        t.method == method,
                        t.animated == animated,
                    )
                )
            ).first()
        return None if row is None else ThumbnailRecord(**row._mapping)

    async def insert_thumbnail(self, thumbnail: ThumbnailRecord, now_ms: int) -> bool:
        """False if the media is gone or the thumbnail was made meanwhile."""
        try:
            async with self._db.transaction() as conn:
                exists = await conn.scalar(
                    select(local_media.c.media_id).where(
                        local_media.c.media_id == thumbnail.media_id
                    )
                )
                if exists is None:
                    return False
                await conn.execute(
                    insert(local_media_thumbnails).values(
                        media_id=thumbnail.media_id,
                        width=thumbnail.width,
                        height=thumbnail.height,
                        method=thumbnail.method,
                        animated=thumbnail.animated,
                        content_type=thumbnail.content_type,
                        sha256=thumbnail.sha256,
                        length=thumbnail.length,
                        created_ts=now_ms,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def delete_thumbnail(self, thumbnail: ThumbnailRecord) -> None:
        t = local_media_thumbnails.c
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(local_media_thumbnails).where(
                    t.media_id == thumbnail.media_id,
                    t.width == thumbnail.width,
                    t.height == thumbnail.height,
                    t.method == thumbnail.method,
                    t.animated == thumbnail.animated,
                )
            )

    async def sha256_in_use(self, sha256: str) -> bool:
        """Whether any media or thumbnail still uses the file with this hash."""
        async with self._db.read() as conn:
            found = await conn.scalar(
                union(
                    select(local_media.c.media_id).where(local_media.c.sha256 == sha256),
                    select(local_media_thumbnails.c.media_id).where(
                        local_media_thumbnails.c.sha256 == sha256
                    ),
                    # other servers' media cached here shares the store's files
                    *uses_of_sha256(sha256),
                )
                .limit(1)
                .subquery()
                .select()
            )
        return found is not None

    # --- quarantine and protection ------------------------------------------------------

    async def set_quarantined(self, media_ids: Sequence[str], quarantined_by: str | None) -> int:
        """Quarantine (or, with None, release) media; protected media is never quarantined.
        Returns how many rows changed."""
        if not media_ids:
            return 0
        condition: list[ColumnElement[bool]] = [local_media.c.media_id.in_(list(media_ids))]
        if quarantined_by is not None:
            condition += [
                local_media.c.safe_from_quarantine == false(),
                local_media.c.quarantined_by.is_(None),
            ]
        else:
            condition.append(local_media.c.quarantined_by.is_not(None))
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(local_media).where(*condition).values(quarantined_by=quarantined_by)
            )
        return result.rowcount

    async def user_media_ids(self, user_id: str) -> list[str]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(local_media.c.media_id)
                .where(local_media.c.user_id == user_id)
                .order_by(local_media.c.created_ts, local_media.c.media_id)
            )
            return list(rows.scalars().all())

    async def set_protected(self, media_id: str, protected: bool) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(local_media)
                .where(local_media.c.media_id == media_id)
                .values(safe_from_quarantine=protected)
            )
        return result.rowcount == 1

    # --- listing and deleting -----------------------------------------------------------

    async def list_user_media(
        self,
        user_id: str,
        *,
        offset: int,
        limit: int,
        order_by: MediaOrder,
        backwards: bool,
    ) -> tuple[list[MediaRecord], int]:
        """One page of the user's uploaded media, and how many they have in all."""
        column = getattr(local_media.c, order_by)
        direction = desc if backwards else asc
        uploaded = and_(local_media.c.user_id == user_id, local_media.c.sha256.is_not(None))
        async with self._db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(local_media).where(uploaded))
            rows = (
                await conn.execute(
                    select(*_MEDIA_COLUMNS)
                    .where(uploaded)
                    # media_id breaks ties so pages neither repeat nor skip rows
                    .order_by(direction(column), direction(local_media.c.media_id))
                    .offset(offset)
                    .limit(limit)
                )
            ).all()
        return [_media(row) for row in rows], int(total or 0)

    async def find_old_media(
        self, *, before_ts: int, size_gt: int, keep_media_ids: Iterable[str]
    ) -> list[MediaRecord]:
        """Uploaded media last used before `before_ts` and bigger than `size_gt` bytes,
        neither protected nor quarantined, nor one of `keep_media_ids`."""
        keep = set(keep_media_ids)
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(*_MEDIA_COLUMNS)
                    .where(
                        local_media.c.sha256.is_not(None),
                        func.coalesce(local_media.c.last_access_ts, local_media.c.created_ts)
                        < before_ts,
                        local_media.c.media_length > size_gt,
                        local_media.c.safe_from_quarantine == false(),
                        local_media.c.quarantined_by.is_(None),
                    )
                    .order_by(local_media.c.created_ts, local_media.c.media_id)
                )
            ).all()
        return [_media(row) for row in rows if row.media_id not in keep]

    async def delete_media(self, media_id: str) -> tuple[bool, set[str]]:
        """Delete the media and its thumbnails; returns whether it existed and the hashes
        of the files they used (to remove the files nothing else uses)."""
        async with self._db.transaction() as conn:
            hashes = set(
                (
                    await conn.execute(
                        select(local_media_thumbnails.c.sha256).where(
                            local_media_thumbnails.c.media_id == media_id
                        )
                    )
                )
                .scalars()
                .all()
            )
            own = await conn.scalar(
                select(local_media.c.sha256).where(local_media.c.media_id == media_id)
            )
            await conn.execute(
                delete(local_media_thumbnails).where(local_media_thumbnails.c.media_id == media_id)
            )
            result = await conn.execute(
                delete(local_media).where(local_media.c.media_id == media_id)
            )
        if own is not None:
            hashes.add(own)
        return result.rowcount == 1, hashes

    # --- what other domains' rows point at (read only) ----------------------------------

    async def profile_avatar_urls(self) -> set[str]:
        """The avatar URLs of users' profiles (media to keep when deleting old media)."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(profiles.c.avatar_url).where(profiles.c.avatar_url.like("mxc://%"))
            )
            return {url for url in rows.scalars().all() if url}

    async def room_avatar_contents(self) -> list[dict[str, Any]]:
        """The content of every m.room.avatar event (their media is kept the same way)."""
        async with self._db.read() as conn:
            rows = await conn.execute(select(events.c.json).where(events.c.type == "m.room.avatar"))
            return [_content(raw) for raw in rows.scalars().all()]

    async def room_exists(self, room_id: str) -> bool:
        async with self._db.read() as conn:
            found = await conn.scalar(select(rooms.c.room_id).where(rooms.c.room_id == room_id))
        return found is not None

    async def room_event_contents(self, room_id: str) -> list[dict[str, Any]]:
        """The content of the room's events that mention an mxc URI anywhere."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(events.c.json).where(
                    events.c.room_id == room_id, events.c.json.like("%mxc://%")
                )
            )
            return [_content(raw) for raw in rows.scalars().all()]


def _content(raw: str) -> dict[str, Any]:
    pdu = orjson.loads(raw)
    content = pdu.get("content") if isinstance(pdu, dict) else None
    return content if isinstance(content, dict) else {}
