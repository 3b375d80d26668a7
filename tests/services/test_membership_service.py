"""The membership service on both engines: who shares a room, and profile changes turning
into member events."""

from __future__ import annotations

from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.requester import UserRequester
from ranvier.services.profiles import ProfileChange
from ranvier.services.rooms.membership import MembershipService
from ranvier.storage.database import Database
from ranvier.storage.profiles import Profile
from tests.services.test_room_sender import ALICE, BOB, SERVER, create_room, new_sender

CAROL = f"@carol:{SERVER}"


def requester(user_id: str) -> UserRequester:
    return UserRequester(user_id, "DEVICE", is_guest=False, is_admin=False, access_token_id=1)


async def no_profile(user_id: str) -> tuple[str | None, str | None]:
    return (None, None)


async def test_shares_room_follows_current_membership(database: Database) -> None:
    sender = await new_sender(database)
    membership = MembershipService(sender, SERVER, no_profile)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    assert not await membership.shares_room(ALICE, BOB)
    assert await membership.shares_room(ALICE, ALICE)
    await membership.join(requester(BOB), room_id)
    assert await membership.shares_room(ALICE, BOB)
    assert await membership.shares_room(BOB, ALICE)
    assert not await membership.shares_room(ALICE, CAROL)
    await membership.leave(requester(BOB), room_id)
    assert not await membership.shares_room(ALICE, BOB)
    assert await membership.joined_rooms(BOB) == []
    assert await membership.joined_rooms(ALICE) == [room_id]


async def test_profile_change_sends_member_events(database: Database) -> None:
    sender = await new_sender(database)
    membership = MembershipService(sender, SERVER, no_profile)
    rooms = [await create_room(sender, KNOWN_ROOM_VERSIONS[v]) for v in ("1", "12")]
    before = Profile(displayname="Alice", avatar_url=None, fields={})
    after = Profile(displayname="Alice B", avatar_url="mxc://test/a", fields={})
    await membership.on_profile_change(ProfileChange(ALICE, before, after, by_admin=False))
    for room_id in rooms:
        head = await sender.head(room_id)
        event = await sender.loader.get_event(head.state[("m.room.member", ALICE)])
        assert event is not None
        assert event.content == {
            "membership": "join",
            "displayname": "Alice B",
            "avatar_url": "mxc://test/a",
        }
    # a change that leaves name and avatar alone sends nothing
    current = sender.positions.current
    fields_only = Profile(displayname="Alice B", avatar_url="mxc://test/a", fields={"x.y": 1})
    await membership.on_profile_change(ProfileChange(ALICE, after, fields_only, by_admin=False))
    assert sender.positions.current == current
