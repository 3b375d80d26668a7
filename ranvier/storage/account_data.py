"""account_data and room_account_data: what clients store for a user, globally or per room.

Room tags live here too, as room account data of type `m.tag` (spec: "Room Tagging"), so
that /sync delivers them with the rest. Every write takes a position in the account_data
stream in its own transaction; /sync asks for what changed after a position it has seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Column, ForeignKey, Index, Table, Text, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata
from ranvier.storage.stream_ids import ACCOUNT_DATA_STREAM, current_position, next_position

account_data = Table(
    "account_data",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("account_data_type", Text, primary_key=True),
    Column("content", Text, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    Index("ix_account_data_user_id_stream_id", "user_id", "stream_id"),
)

room_account_data = Table(
    "room_account_data",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("room_id", Text, primary_key=True),
    Column("account_data_type", Text, primary_key=True),
    Column("content", Text, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    Index("ix_room_account_data_user_id_stream_id", "user_id", "stream_id"),
)

TAG_TYPE = "m.tag"

JsonObject = dict[str, Any]


class _Unchanged(Exception):
    pass


@dataclass(frozen=True)
class AccountDataChanges:
    """Account data changed after some stream position, latest content per type."""

    global_data: dict[str, JsonObject]
    # room_id -> type -> content
    room_data: dict[str, dict[str, JsonObject]]
    # the position these changes run up to: the next "since"
    position: int


def _dumps(content: Mapping[str, Any]) -> str:
    # canonical (sorted keys) so equal content is stored as equal text
    return orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()


def _loads(text: str) -> JsonObject:
    value: JsonObject = orjson.loads(text)
    return value


async def _upsert_room(
    conn: AsyncConnection,
    user_id: str,
    room_id: str,
    data_type: str,
    content: JsonObject,
    position: int,
) -> None:
    stmt = (
        insert_for(conn)(room_account_data)
        .values(
            user_id=user_id,
            room_id=room_id,
            account_data_type=data_type,
            content=_dumps(content),
            stream_id=position,
        )
        .on_conflict_do_update(
            index_elements=["user_id", "room_id", "account_data_type"],
            set_={"content": _dumps(content), "stream_id": position},
        )
    )
    await conn.execute(stmt)


async def _get_room(
    conn: AsyncConnection, user_id: str, room_id: str, data_type: str
) -> JsonObject | None:
    text = (
        await conn.execute(
            select(room_account_data.c.content).where(
                room_account_data.c.user_id == user_id,
                room_account_data.c.room_id == room_id,
                room_account_data.c.account_data_type == data_type,
            )
        )
    ).scalar_one_or_none()
    return None if text is None else _loads(text)


class AccountDataStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_global(self, user_id: str, data_type: str, content: JsonObject) -> int:
        """Store `content` as the user's account data of `data_type`; returns its stream
        position."""
        async with self._db.transaction() as conn:
            position = await next_position(conn, ACCOUNT_DATA_STREAM)
            stmt = (
                insert_for(conn)(account_data)
                .values(
                    user_id=user_id,
                    account_data_type=data_type,
                    content=_dumps(content),
                    stream_id=position,
                )
                .on_conflict_do_update(
                    index_elements=["user_id", "account_data_type"],
                    set_={"content": _dumps(content), "stream_id": position},
                )
            )
            await conn.execute(stmt)
        return position

    async def get_global(self, user_id: str, data_type: str) -> JsonObject | None:
        async with self._db.read() as conn:
            text = (
                await conn.execute(
                    select(account_data.c.content).where(
                        account_data.c.user_id == user_id,
                        account_data.c.account_data_type == data_type,
                    )
                )
            ).scalar_one_or_none()
        return None if text is None else _loads(text)

    async def set_room(
        self, user_id: str, room_id: str, data_type: str, content: JsonObject
    ) -> int:
        """Store `content` as the user's account data of `data_type` in `room_id`; returns its
        stream position."""
        async with self._db.transaction() as conn:
            position = await next_position(conn, ACCOUNT_DATA_STREAM)
            await _upsert_room(conn, user_id, room_id, data_type, content, position)
        return position

    async def get_room(self, user_id: str, room_id: str, data_type: str) -> JsonObject | None:
        async with self._db.read() as conn:
            return await _get_room(conn, user_id, room_id, data_type)

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, JsonObject]:
        content = await self.get_room(user_id, room_id, TAG_TYPE)
        tags = (content or {}).get("tags")
        return tags if isinstance(tags, dict) else {}

    async def change_tags(
        self,
        user_id: str,
        room_id: str,
        change: Callable[[dict[str, JsonObject]], bool],
    ) -> int | None:
        """Read-modify-write the room's `m.tag` content: `change` edits the tags dict in place
        and says whether it changed anything. Returns the new stream position, or None when
        nothing changed (and nothing was written)."""
        try:
            async with self._db.transaction() as conn:
                # Take the position first: its row lock makes a concurrent tag change of the
                # same room wait until ours commits, so neither overwrites the other's tag.
                position = await next_position(conn, ACCOUNT_DATA_STREAM)
                content = await _get_room(conn, user_id, room_id, TAG_TYPE) or {}
                tags = content.get("tags")
                if not isinstance(tags, dict):
                    tags = {}
                if not change(tags):
                    # roll back, giving the position back: nothing observable happened
                    raise _Unchanged
                await _upsert_room(conn, user_id, room_id, TAG_TYPE, {"tags": tags}, position)
        except _Unchanged:
            return None
        return position

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, ACCOUNT_DATA_STREAM)

    async def get_changes_since(self, user_id: str, since: int) -> AccountDataChanges:
        """The user's account data changed after position `since` (0: all of it), for /sync."""
        async with self._db.read() as conn:
            # read the position first: anything committed later has a higher position and
            # will be picked up by the next call, never lost
            position = await current_position(conn, ACCOUNT_DATA_STREAM)
            global_rows = await conn.execute(
                select(account_data.c.account_data_type, account_data.c.content).where(
                    and_(
                        account_data.c.user_id == user_id,
                        account_data.c.stream_id > since,
                        account_data.c.stream_id <= position,
                    )
                )
            )
            global_data = {row.account_data_type: _loads(row.content) for row in global_rows}
            room_rows = await conn.execute(
                select(
                    room_account_data.c.room_id,
                    room_account_data.c.account_data_type,
                    room_account_data.c.content,
                ).where(
                    and_(
                        room_account_data.c.user_id == user_id,
                        room_account_data.c.stream_id > since,
                        room_account_data.c.stream_id <= position,
                    )
                )
            )
            room_data: dict[str, dict[str, JsonObject]] = {}
            for row in room_rows:
                room_data.setdefault(row.room_id, {})[row.account_data_type] = _loads(row.content)
        return AccountDataChanges(global_data=global_data, room_data=room_data, position=position)
