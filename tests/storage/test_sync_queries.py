"""The reads /sync makes, on both engines: member summaries (counts and heroes)."""

from __future__ import annotations

from ranvier.storage import state as state_store
from ranvier.storage import sync as sync_store
from ranvier.storage.database import Database

ME = "@me:hs"


async def members(database: Database, room_id: str, who: dict[str, str]) -> None:
    async with database.transaction() as conn:
        await state_store.apply_current_state_delta(
            conn,
            room_id,
            {
                ("m.room.member", user_id): (f"${room_id}{user_id}", membership)
                for user_id, membership in who.items()
            },
        )


async def test_member_summaries(database: Database) -> None:
    await members(
        database, "!a", {ME: "join", "@z:hs": "join", "@a:hs": "invite", "@gone:hs": "leave"}
    )
    await members(database, "!alone", {ME: "join", "@gone:hs": "leave", "@x:hs": "ban"})
    await members(database, "!big", {ME: "join", **{f"@u{i}:hs": "join" for i in range(9)}})
    found = await sync_store.get_member_summaries(
        database, ["!a", "!alone", "!big", "!none"], ME, 5
    )
    assert (found["!a"].joined, found["!a"].invited, found["!a"].heroes) == (
        2,
        1,
        ["@a:hs", "@z:hs"],
    )
    # nobody else here: those who left stand in
    assert found["!alone"].heroes == ["@gone:hs", "@x:hs"] and found["!alone"].joined == 1
    assert found["!big"].joined == 10 and found["!big"].heroes == [f"@u{i}:hs" for i in range(5)]
    assert (found["!none"].joined, found["!none"].heroes) == (0, [])
