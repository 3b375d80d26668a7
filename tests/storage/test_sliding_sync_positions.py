"""Sliding sync's stored positions on both engines: a logged-out device's connections
go, and so do positions handed out before the abandonment cut-off, and nothing else."""

from __future__ import annotations

from ranvier.storage import sliding_sync as store
from ranvier.storage.database import Database
from ranvier.storage.sliding_sync import SentRoom

ALICE = "@alice:test"
BOB = "@bob:test"


async def add(database: Database, user_id: str, device_id: str, conn_id: str, ts: int) -> int:
    return await store.add_position(
        database,
        user_id=user_id,
        device_id=device_id,
        conn_id=conn_id,
        token="s1",
        room_to_sent={"!room:test": SentRoom(1, 1, (("m.room.name", ""),))},
        created_ts=ts,
        keep_from=None,
    )


async def test_a_deleted_devices_positions_go(database: Database) -> None:
    phone = await add(database, ALICE, "PHONE", "main", 10)
    phone_other = await add(database, ALICE, "PHONE", "notifications", 10)
    laptop = await add(database, ALICE, "LAPTOP", "main", 10)
    bobs_phone = await add(database, BOB, "PHONE", "main", 10)
    await store.delete_device_positions(database, ALICE, ["PHONE"])
    assert await store.get_position(database, phone) is None
    assert await store.get_position(database, phone_other) is None
    assert await store.get_position(database, laptop) is not None
    assert await store.get_position(database, bobs_phone) is not None


async def test_positions_before_the_cut_off_are_pruned(database: Database) -> None:
    old = await add(database, ALICE, "PHONE", "main", 1_000)
    recent = await add(database, ALICE, "LAPTOP", "main", 5_000)
    assert await store.delete_positions_before(database, 5_000) == 1
    assert await store.get_position(database, old) is None
    kept = await store.get_position(database, recent)
    assert kept is not None and kept.room_to_sent == {
        "!room:test": SentRoom(1, 1, (("m.room.name", ""),))
    }


async def test_what_each_room_was_sent_with_round_trips(database: Database) -> None:
    sent = {
        "!named:test": SentRoom(7, 3, (("m.room.name", ""), ("m.room.member", "$LAZY"))),
        "!unknown:test": SentRoom(5, 1, None),
    }
    pos = await store.add_position(
        database,
        user_id=ALICE,
        device_id="PHONE",
        conn_id="",
        token="s1",
        room_to_sent=sent,
        created_ts=1,
        keep_from=None,
    )
    stored = await store.get_position(database, pos)
    assert stored is not None and stored.room_to_sent == sent
