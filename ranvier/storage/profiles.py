"""profiles: each local user's display name and avatar URL.

Registration creates the row (display name = localpart, as Synapse does); deactivation with
`erase` clears it. The profile endpoints read and change it.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Table, Text, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

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
    await conn.execute(
        update(profiles)
        .where(profiles.c.user_id == user_id)
        .values(displayname=None, avatar_url=None)
    )
