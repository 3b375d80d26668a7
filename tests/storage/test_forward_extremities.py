"""A room's forward extremities are replaced as a whole, whatever was there before."""

from __future__ import annotations

import pytest

from ranvier.storage import events as event_store
from ranvier.storage.database import Database


async def extremities(db: Database, room_id: str) -> set[str]:
    async with db.read() as conn:
        rows = await conn.execute(
            event_store.room_forward_extremities.select().where(
                event_store.room_forward_extremities.c.room_id == room_id
            )
        )
        return {row.event_id for row in rows}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ([], ["$a"]),
        (["$a"], ["$b"]),
        (["$a", "$b"], ["$c"]),  # several merged into one
        (["$a"], ["$b", "$c"]),
        (["$a", "$b"], []),
    ],
)
async def test_replacing_leaves_exactly_the_new_extremities(
    database: Database, before: list[str], after: list[str]
) -> None:
    async with database.transaction() as conn:
        await event_store.replace_forward_extremities(conn, "!room", before)
        await event_store.replace_forward_extremities(conn, "!other", ["$elsewhere"])
    async with database.transaction() as conn:
        await event_store.replace_forward_extremities(conn, "!room", after)
    assert await extremities(database, "!room") == set(after)
    assert await extremities(database, "!other") == {"$elsewhere"}
