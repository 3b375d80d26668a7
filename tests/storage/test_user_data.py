"""Stores of per-user data on both engines: stream positions, account data and tags,
filters, custom profile fields."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.filters import FilterStore
from ranvier.storage.profiles import Profile, ProfileStore
from ranvier.storage.stream_ids import current_position, next_position
from ranvier.storage.users import UserStore

ALICE = "@alice:test"


async def make_user(db: Database, user_id: str = ALICE) -> None:
    await UserStore(db).create_user(
        user_id, password_hash=None, creation_ts=0, displayname=user_id[1:].split(":")[0]
    )


async def test_positions_count_from_one_per_stream(database: Database) -> None:
    async with database.transaction() as conn:
        assert await next_position(conn, "a") == 1
        assert await next_position(conn, "a") == 2
        assert await next_position(conn, "b") == 1
    async with database.read() as conn:
        assert await current_position(conn, "a") == 2
        assert await current_position(conn, "never") == 0


async def test_a_rolled_back_position_is_handed_out_again(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await next_position(conn, "s")
            raise RuntimeError("abort")
    async with database.transaction() as conn:
        assert await next_position(conn, "s") == 1


async def test_concurrent_writers_get_distinct_positions(database: Database) -> None:
    async def take() -> int:
        async with database.transaction() as conn:
            position = await next_position(conn, "busy")
            await asyncio.sleep(0.01)
            return position

    positions = await asyncio.gather(*(take() for _ in range(8)))
    assert sorted(positions) == list(range(1, 9))


async def test_account_data_round_trip_and_changes_since(database: Database) -> None:
    await make_user(database)
    store = AccountDataStore(database)
    first = await store.set_global(ALICE, "org.example.a", {"x": 1})
    second = await store.set_room(ALICE, "!r:test", "org.example.b", {"y": [1, 2]})
    assert second > first
    assert await store.get_global(ALICE, "org.example.a") == {"x": 1}
    assert await store.get_room(ALICE, "!r:test", "org.example.b") == {"y": [1, 2]}
    assert await store.get_global(ALICE, "org.example.missing") is None

    changes = await store.get_changes_since(ALICE, first)
    assert changes.global_data == {}
    assert changes.room_data == {"!r:test": {"org.example.b": {"y": [1, 2]}}}
    assert changes.position == second
    everything = await store.get_changes_since(ALICE, 0)
    assert everything.global_data == {"org.example.a": {"x": 1}}

    # overwriting moves the type to a new position
    third = await store.set_global(ALICE, "org.example.a", {"x": 2})
    assert (await store.get_changes_since(ALICE, second)).global_data == {"org.example.a": {"x": 2}}
    assert await store.current_stream_position() == third


async def test_concurrent_tag_changes_keep_every_tag(database: Database) -> None:
    await make_user(database)
    store = AccountDataStore(database)

    def adder(tag: str) -> Callable[[dict[str, Any]], bool]:
        def add(tags: dict[str, Any]) -> bool:
            tags[tag] = {}
            return True

        return add

    await asyncio.gather(*(store.change_tags(ALICE, "!r:test", adder(f"u.{i}")) for i in range(6)))
    assert set(await store.get_tags(ALICE, "!r:test")) == {f"u.{i}" for i in range(6)}
    position = await store.current_stream_position()
    # a change that changes nothing writes nothing and takes no position
    assert await store.change_tags(ALICE, "!r:test", lambda tags: False) is None
    assert await store.current_stream_position() == position


async def test_filters_get_ids_and_identical_uploads_share_one(database: Database) -> None:
    await make_user(database)
    await make_user(database, "@bob:test")
    store = FilterStore(database)
    first = await store.add_filter(ALICE, {"room": {"timeline": {"limit": 5}}})
    again = await store.add_filter(ALICE, {"room": {"timeline": {"limit": 5}}})
    other = await store.add_filter(ALICE, {"presence": {"types": []}})
    bobs = await store.add_filter("@bob:test", {"room": {"timeline": {"limit": 5}}})
    assert first == again
    assert len({first, other, bobs}) == 3
    assert await store.get_filter(ALICE, first) == {"room": {"timeline": {"limit": 5}}}
    assert await store.get_filter("@bob:test", first) is None


async def test_profile_changes_apply_in_one_transaction(database: Database) -> None:
    await make_user(database)
    store = ProfileStore(database)
    assert await store.get_profile(ALICE) == Profile(displayname="alice")
    assert await store.get_profile("@nobody:test") is None

    def set_fields(profile: Profile) -> Profile:
        return Profile(
            displayname="Alice",
            avatar_url="mxc://test/a",
            fields={"m.tz": "Europe/Paris", "org.example.n": [1]},
        )

    before, after = await store.modify_profile(ALICE, set_fields) or (None, None)
    assert before == Profile(displayname="alice")
    assert await store.get_profile(ALICE) == after

    def refuse(profile: Profile) -> Profile:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.modify_profile(ALICE, refuse)
    assert await store.get_profile(ALICE) == after

    await store.modify_profile(ALICE, lambda p: Profile(displayname=None, fields={"m.tz": "UTC"}))
    assert await store.get_profile(ALICE) == Profile(fields={"m.tz": "UTC"})
    assert await store.modify_profile("@nobody:test", lambda p: p) is None
