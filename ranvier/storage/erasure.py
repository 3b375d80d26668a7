"""Which users asked, on deactivation, for their data to be erased (users.erased)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from ranvier.storage.database import Database
from ranvier.storage.users import users


async def erased_among(db: Database, user_ids: Iterable[str]) -> set[str]:
    """The erased users among `user_ids` (remote users are never erased here)."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return set()
    query = select(users.c.user_id).where(users.c.user_id.in_(wanted), users.c.erased)
    async with db.read() as conn:
        rows = await conn.execute(query)
        return {row.user_id for row in rows}
