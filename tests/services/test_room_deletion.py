"""The Delete Room service on both engines: users it could not remove, the purge it then
refuses unless forced, and deletions a stopped server left unfinished."""

from __future__ import annotations

import asyncio

import pytest

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.requester import UserRequester
from ranvier.services.rooms.deletion import DeleteRoomRequest, RoomDeletionService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.room_creation import CreateRoomRequest, RoomCreationService
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage.database import Database
from ranvier.storage.room_admin import RoomAdminStore

SERVER = "test.localhost"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
ADMIN = f"@admin:{SERVER}"
KEY = ServerSigningKey.from_seed(b"\x03" * 32, "test")


async def no_profile(user_id: str) -> tuple[str | None, str | None]:
    return None, None


class StubbornMembership(MembershipService):
    """Bob's leave fails, as if the auth rules had refused it."""

    async def leave(
        self, requester: UserRequester, room_id: str, *, reason: str | None = None
    ) -> None:
        if requester.user_id == BOB:
            raise RuntimeError("cannot leave")
        await super().leave(requester, room_id, reason=reason)


def as_user(user_id: str) -> UserRequester:
    return UserRequester(user_id, "DEVICE", False, False, None)


async def setup(database: Database) -> tuple[RoomDeletionService, RoomAdminStore, str]:
    loader = EventLoader(database, events_cache_size=100, state_cache_size=10)
    sender = await RoomEventSender.create(database, loader, SERVER, KEY)
    creation = RoomCreationService(sender, SERVER, "10", no_profile)
    membership = StubbornMembership(sender, SERVER, no_profile)
    store = RoomAdminStore(database, SERVER)
    room_id = await creation.create_room(as_user(ALICE), CreateRoomRequest(preset="public_chat"))
    await membership.join(as_user(BOB), room_id)
    await sender.send(
        EventTemplate("m.room.message", BOB, {"msgtype": "m.text", "body": "hi"}, room_id)
    )
    return RoomDeletionService(store, sender, creation, membership), store, room_id


async def finished(service: RoomDeletionService, delete_id: str) -> dict[str, object]:
    for _ in range(400):
        status = await service.status_by_id(delete_id)
        if status["status"] in ("complete", "failed"):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the deletion did not finish")


@pytest.mark.parametrize("force", [False, True])
async def test_users_left_behind_stop_the_purge_unless_forced(
    database: Database, force: bool
) -> None:
    service, store, room_id = await setup(database)
    delete_id = await service.start(DeleteRoomRequest(room_id, ADMIN, force_purge=force))
    status = await finished(service, delete_id)
    assert status["shutdown_room"] == {
        "kicked_users": [ALICE],
        "failed_to_kick_users": [BOB],
        "local_aliases": [],
        "new_room_id": None,
    }
    if force:
        assert status["status"] == "complete"
        assert not await store.room_exists(room_id)
    else:
        assert status["status"] == "failed"
        assert "force_purge" in str(status["error"])
        assert await store.room_exists(room_id)
        assert await store.get_local_members(room_id, ("join",)) == [BOB]


async def test_a_second_deletion_of_a_running_one_is_refused(database: Database) -> None:
    service, _, room_id = await setup(database)
    delete_id = await service.start(DeleteRoomRequest(room_id, ADMIN, purge=False))
    with pytest.raises(MatrixError) as refused:
        await service.start(DeleteRoomRequest(room_id, ADMIN))
    assert refused.value.status == 400
    await finished(service, delete_id)


async def test_deletions_left_running_by_a_stop_are_failed_at_start(database: Database) -> None:
    service, store, room_id = await setup(database)
    await store.insert_deletion("interrupted", room_id, ADMIN, "purging")
    await service.recover()
    status = await service.status_by_id("interrupted")
    assert status["status"] == "failed"
    assert "stopped" in str(status["error"])
    by_room = await service.status_by_room(room_id)
    assert [result["delete_id"] for result in by_room["results"]] == ["interrupted"]
