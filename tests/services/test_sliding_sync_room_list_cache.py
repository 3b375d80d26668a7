"""The kept room lists of sliding sync, on both engines: brought forward from the rows and
stamps written since, they hold what a fresh read finds, in the same order."""

from __future__ import annotations

from ranvier.services.sliding_sync.room_list_cache import RoomListCache
from ranvier.storage import sliding_sync as store
from ranvier.storage.database import Database
from ranvier.storage.memberships import MembershipRow, insert_memberships
from ranvier.streams.change_log import ChangeLog

ALICE = "@alice:test"


class World:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.position = 0
        self.changes = ChangeLog(0)

    async def member(self, room_id: str, membership: str) -> None:
        self.position += 1
        row = MembershipRow(f"$m{self.position}", room_id, ALICE, ALICE, membership, self.position)
        async with self.db.transaction() as conn:
            await insert_memberships(conn, [row])
            if membership == "join":
                await store.record_bump_stamps(conn, {room_id: self.position})
        self.changes.record(room_id, self.position)

    async def message(self, room_id: str) -> None:
        self.position += 1
        async with self.db.transaction() as conn:
            await store.record_bump_stamps(conn, {room_id: self.position})
        self.changes.record(room_id, self.position)


async def test_a_kept_list_matches_a_fresh_read(database: Database) -> None:
    world = World(database)
    kept = RoomListCache(database, world.changes.changed_since)
    for index in range(6):
        await world.member(f"!r{index}:test", "join")
    await world.member("!invited:test", "invite")
    first = (await kept.get(ALICE, 0, world.position))[2]
    assert [room.room_id for room in first][:2] == ["!invited:test", "!r5:test"]

    since = world.position
    await world.message("!r0:test")
    await world.member("!r3:test", "leave")
    await world.member("!new:test", "join")
    await world.member("!invited:test", "join")
    await world.message("!r1:test")
    memberships, stamps, active = await kept.get(ALICE, since, world.position)
    fresh = await RoomListCache(database, world.changes.changed_since).get(
        ALICE, since, world.position
    )
    assert active == fresh[2]
    assert stamps == fresh[1]
    assert memberships == fresh[0]
    assert [room.room_id for room in active] == [
        "!r1:test",
        "!invited:test",
        "!new:test",
        "!r0:test",
        "!r5:test",
        "!r4:test",
        "!r2:test",
    ]
    assert memberships.before["!invited:test"].membership == "invite"
    assert memberships.joined_since == {"!new:test", "!invited:test"}
