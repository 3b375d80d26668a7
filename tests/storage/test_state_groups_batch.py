"""Loading many state groups at once gives what loading each one does, on both engines."""

from __future__ import annotations

from ranvier.storage import state as state_store
from ranvier.storage.database import Database


async def test_batch_load_matches_single_loads(database: Database) -> None:
    async with database.transaction() as conn:
        await state_store.insert_state_group(
            conn, 1, "!r:hs", "$a", None, 0, {("m.room.create", ""): "$a", ("x", ""): "$x1"}
        )
        # a delta: one key replaced, one removed, one added
        await state_store.insert_state_group(
            conn, 2, "!r:hs", "$b", 1, 1, {("x", ""): None, ("y", ""): "$y"}
        )
        await state_store.insert_state_group(conn, 3, "!r:hs", "$c", 2, 2, {("y", ""): "$y2"})
        await state_store.insert_state_group(conn, 4, "!s:hs", "$d", None, 0, {("z", ""): "$z"})
    batch = await state_store.get_state_group_states(database, [3, 1, 4, 2, 3, 99])
    for group in (1, 2, 3, 4):
        assert batch[group] == await state_store.get_state_group_state(database, group)
    assert batch[3] == {("m.room.create", ""): "$a", ("y", ""): "$y2"}
    assert batch[99] == {}
