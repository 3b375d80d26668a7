"""What the account data service keeps in memory for every sync, on both engines: the
stream's position and the global account data the syncs read, each equal to the database's
after every kind of change, and a change made while a read was under way never lost."""

from __future__ import annotations

from ranvier.services.account_data import AccountDataService, GlobalAccountDataCache
from ranvier.storage.account_data import AccountDataStore
from ranvier.storage.database import Database
from ranvier.storage.users import UserStore

ALICE = "@alice:test"
ROOM = "!room:test"


async def test_the_kept_position_follows_every_change(database: Database) -> None:
    await UserStore(database).create_user(ALICE, password_hash=None, creation_ts=1)
    store = AccountDataStore(database)
    service = AccountDataService(store)
    await service.set_global(ALICE, ALICE, "org.example.before", {"n": 1})
    assert await service.current_stream_position() == await store.current_stream_position()
    await service.set_global(ALICE, ALICE, "org.example.after", {"n": 2})
    assert await service.current_stream_position() == await store.current_stream_position()
    await service.set_room(ALICE, ALICE, ROOM, "org.example.room", {"n": 3})
    assert await service.current_stream_position() == await store.current_stream_position()
    await service.set_fully_read(ALICE, ROOM, "$event")
    assert await service.current_stream_position() == await store.current_stream_position()
    await service.add_tag(ALICE, ALICE, ROOM, "u.work", {})
    assert await service.current_stream_position() == await store.current_stream_position()
    # kept, not read again: a write behind the service's back is not seen
    await store.set_global(ALICE, "org.example.unseen", {})
    assert await service.current_stream_position() < await store.current_stream_position()


async def test_global_data_is_kept_until_the_user_changes_it(database: Database) -> None:
    await UserStore(database).create_user(ALICE, password_hash=None, creation_ts=1)
    store = AccountDataStore(database)
    service = AccountDataService(store)
    cache = GlobalAccountDataCache(store)
    service.on_change.append(cache.invalidate)
    assert await cache.get_global(ALICE, "m.direct") is None
    await service.set_global(ALICE, ALICE, "m.direct", {"@bob:test": [ROOM]})
    assert await cache.get_global(ALICE, "m.direct") == {"@bob:test": [ROOM]}
    # kept: the store changed behind the service's back is not read again
    await store.set_global(ALICE, "m.direct", {})
    assert await cache.get_global(ALICE, "m.direct") == {"@bob:test": [ROOM]}
    await service.set_global(ALICE, ALICE, "m.ignored_user_list", {"ignored_users": {}})
    assert await cache.get_global(ALICE, "m.direct") == {}


async def test_a_read_overtaken_by_a_change_is_not_kept(database: Database) -> None:
    await UserStore(database).create_user(ALICE, password_hash=None, creation_ts=1)
    store = AccountDataStore(database)
    cache = GlobalAccountDataCache(store)
    await store.set_global(ALICE, "m.direct", {"old": []})

    class ChangedDuringRead(AccountDataStore):
        async def get_global(self, user_id: str, data_type: str) -> dict[str, object] | None:
            found = await super().get_global(user_id, data_type)
            await store.set_global(ALICE, "m.direct", {"new": []})
            cache.invalidate(ALICE)
            return found

    racing = GlobalAccountDataCache(ChangedDuringRead(database))
    cache = racing
    assert await racing.get_global(ALICE, "m.direct") == {"old": []}
    # the stale answer was not kept: the next read goes to the database again
    assert await racing.get_global(ALICE, "m.direct") == {"new": []}
