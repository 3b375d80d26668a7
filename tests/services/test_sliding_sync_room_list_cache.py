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
        self.member_changes = ChangeLog(0)

    def cache(self) -> RoomListCache:
        return RoomListCache(self.db, self.changes.changed_since, self.member_changes.changed_since)

    async def member(self, room_id: str, membership: str) -> None:
        self.position += 1
        row = MembershipRow(f"$m{self.position}", room_id, ALICE, ALICE, membership, self.position)
        async with self.db.transaction() as conn:
            await insert_memberships(conn, [row])
            if membership == "join":
                await store.record_bump_stamps(conn, {room_id: self.position})
        self.changes.record(room_id, self.position)
        self.member_changes.record(ALICE, self.position)

    async def message(self, room_id: str) -> None:
        self.position += 1
        async with self.db.transaction() as conn:
            await store.record_bump_stamps(conn, {room_id: self.position})
        self.changes.record(room_id, self.position)


async def test_a_kept_list_matches_a_fresh_read(database: Database) -> None:
    world = World(database)
    kept = world.cache()
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
    fresh = await world.cache().get(ALICE, since, world.position)
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


async def test_membership_rows_are_read_only_when_the_log_names_the_user(
    database: Database,
) -> None:
    """A request that finds no membership change of its user in the sender's log reads no
    membership rows (a row the log was never told of stays unseen); one it names is read."""
    world = World(database)
    kept = world.cache()
    await world.member("!a:test", "join")
    assert [r.room_id for r in (await kept.get(ALICE, 0, world.position))[2]] == ["!a:test"]
    world.position += 1
    untold = MembershipRow("$untold", "!b:test", ALICE, ALICE, "join", world.position)
    async with database.transaction() as conn:
        await insert_memberships(conn, [untold])
    world.changes.record("!b:test", world.position)
    await world.message("!a:test")
    assert [r.room_id for r in (await kept.get(ALICE, 0, world.position))[2]] == ["!a:test"]
    await world.member("!c:test", "join")
    listed = (await kept.get(ALICE, 0, world.position))[2]
    assert sorted(r.room_id for r in listed) == ["!a:test", "!c:test"]
