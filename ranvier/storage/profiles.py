"""profiles and profile_fields: each local user's display name, avatar URL and custom fields.

Registration creates the row (display name = localpart, as Synapse does); deactivation with
`erase` clears it. The profile endpoints read and change it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Column, ForeignKey, Table, Text, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

profiles = Table(
    "profiles",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("displayname", Text, nullable=True),
    Column("avatar_url", Text, nullable=True),
)


async def create_profile(conn: AsyncConnection, user_id: str, displayname: str | None) -> None:
    """Called inside the registration transaction, so a user never exists without a profile."""
    await conn.execute(insert(profiles).values(user_id=user_id, displayname=displayname))


async def clear_profile(conn: AsyncConnection, user_id: str) -> None:
    await conn.execute(delete(profile_fields).where(profile_fields.c.user_id == user_id))
    await conn.execute(
        update(profiles)
        .where(profiles.c.user_id == user_id)
        .values(displayname=None, avatar_url=None)
    )


# custom profile fields (spec v1.16: any namespaced key, any JSON value); displayname and
# avatar_url stay in `profiles`, where the rest of the server reads them
profile_fields = Table(
    "profile_fields",
    metadata,
    Column("user_id", Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("field_name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass(frozen=True)
class Profile:
    displayname: str | None = None
    avatar_url: str | None = None
    # custom fields by name; never "displayname" or "avatar_url"
    fields: Mapping[str, Any] = field(default_factory=dict)


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_profile(self, user_id: str) -> Profile | None:
        """The user's profile, or None if the user has none (no such local user)."""
        async with self._db.read() as conn:
            return await _load_profile(conn, user_id, lock=False)

    async def modify_profile(
        self, user_id: str, change: Callable[[Profile], Profile]
    ) -> tuple[Profile, Profile] | None:
        """Replace the profile with `change(profile)` in one transaction, the row locked so
        that concurrent changes apply one after the other; `change` may raise to refuse,
        and then nothing is written. Returns (before, after), or None for no such user."""
        async with self._db.transaction() as conn:
            before = await _load_profile(conn, user_id, lock=True)
            if before is None:
                return None
            after = change(before)
            if (after.displayname, after.avatar_url) != (before.displayname, before.avatar_url):
                await conn.execute(
                    update(profiles)
                    .where(profiles.c.user_id == user_id)
                    .values(displayname=after.displayname, avatar_url=after.avatar_url)
                )
            for name in before.fields.keys() - after.fields.keys():
                await conn.execute(
                    delete(profile_fields).where(
                        profile_fields.c.user_id == user_id, profile_fields.c.field_name == name
                    )
                )
            for name, value in after.fields.items():
                if name in before.fields and before.fields[name] == value:
                    continue
                if name in before.fields:
                    await conn.execute(
                        update(profile_fields)
                        .where(
                            profile_fields.c.user_id == user_id,
                            profile_fields.c.field_name == name,
                        )
                        .values(value=_dumps(value))
                    )
                else:
                    await conn.execute(
                        insert(profile_fields).values(
                            user_id=user_id, field_name=name, value=_dumps(value)
                        )
                    )
        return before, after


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


async def _load_profile(conn: AsyncConnection, user_id: str, *, lock: bool) -> Profile | None:
    query = select(profiles.c.displayname, profiles.c.avatar_url).where(
        profiles.c.user_id == user_id
    )
    if lock:
        # PostgreSQL row lock; SQLite writers already hold the database write lock
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    rows = await conn.execute(
        select(profile_fields.c.field_name, profile_fields.c.value)
        .where(profile_fields.c.user_id == user_id)
        .order_by(profile_fields.c.field_name)
    )
    fields = {name: orjson.loads(value) for name, value in rows}
    return Profile(displayname=row.displayname, avatar_url=row.avatar_url, fields=fields)
