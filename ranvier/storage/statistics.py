"""The admin's statistics (Synapse's statistics admin API): how much media each local user
uploaded, and which rooms take the most room in the database.

These read the media, users, profiles and events tables, which their stores own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select

from ranvier.storage.database import Database
from ranvier.storage.events import events
from ranvier.storage.media import local_media
from ranvier.storage.profiles import profiles

MediaOrderBy = Literal["user_id", "displayname", "media_length", "media_count"]
MEDIA_ORDER_BY_VALUES: tuple[str, ...] = MediaOrderBy.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class UserMediaQuery:
    start: int = 0
    limit: int = 100
    from_ts: int = 0
    until_ts: int | None = None
    order_by: MediaOrderBy = "user_id"
    backwards: bool = False
    # part of the user ID or display name
    search_term: str | None = None


@dataclass(frozen=True)
class UserMediaUsage:
    user_id: str
    displayname: str | None
    media_count: int
    media_length: int


@dataclass(frozen=True)
class RoomSize:
    room_id: str
    estimated_size: int


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class StatisticsQueries:
    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def users_media(self, query: UserMediaQuery) -> tuple[list[UserMediaUsage], int]:
        """One row per local user with media uploaded in [from_ts, until_ts), and the number
        of such users."""
        displayname = profiles.c.displayname
        conditions: list[ColumnElement[bool]] = [
            local_media.c.user_id.is_not(None),
            local_media.c.created_ts >= query.from_ts,
        ]
        if query.until_ts is not None:
            conditions.append(local_media.c.created_ts < query.until_ts)
        if query.search_term is not None:
            pattern = f"%{_escape_like(query.search_term.lower())}%"
            conditions.append(
                or_(
                    func.lower(local_media.c.user_id).like(pattern, escape="\\"),
                    func.lower(displayname).like(pattern, escape="\\"),
                )
            )
        count = func.count(local_media.c.media_id).label("media_count")
        length = func.coalesce(func.sum(local_media.c.media_length), 0).label("media_length")
        grouped = (
            select(local_media.c.user_id, displayname.label("displayname"), count, length)
            .select_from(
                local_media.outerjoin(profiles, profiles.c.user_id == local_media.c.user_id)
            )
            .where(*conditions)
            .group_by(local_media.c.user_id, displayname)
        ).subquery()
        sort_key = {
            "user_id": grouped.c.user_id,
            "displayname": grouped.c.displayname,
            "media_length": grouped.c.media_length,
            "media_count": grouped.c.media_count,
        }[query.order_by]
        primary = sort_key.desc() if query.backwards else sort_key.asc()
        # ties (and missing display names, which sort first forwards) by user ID
        ordered = (
            select(grouped)
            .order_by(primary.nulls_first() if not query.backwards else primary.nulls_last())
            .order_by(grouped.c.user_id)
            .offset(query.start)
            .limit(query.limit)
        )
        async with self._db.read() as conn:
            total = (await conn.execute(select(func.count()).select_from(grouped))).scalar_one()
            rows = (await conn.execute(ordered)).all()
        found = [
            UserMediaUsage(r.user_id, r.displayname, int(r.media_count), int(r.media_length))
            for r in rows
        ]
        return found, int(total)

    async def largest_rooms(self, limit: int) -> list[RoomSize]:
        """The rooms whose events take the most space: the length of their stored JSON, an
        estimate that is the same on both engines (indexes and state are left out)."""
        size = func.sum(func.length(events.c.json)).label("estimated_size")
        query = (
            select(events.c.room_id, size)
            .group_by(events.c.room_id)
            .order_by(size.desc(), events.c.room_id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [RoomSize(r.room_id, int(r.estimated_size)) for r in rows]
