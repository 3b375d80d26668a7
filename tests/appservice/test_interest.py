"""Which events and rooms a service is interested in, decided with batched lookups: one
read of the members of every room not yet known however many events there are, none for
rooms already known, and a room read again only after a local user's membership changed
there. Without a server: the streams are a counting fake."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from ranvier.config.appservices import AppService, Namespace
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.appservice.interest import AppServiceInterest
from ranvier.storage.appservices import StreamEvent

SERVER = "test.localhost"


class CountingStreams:
    def __init__(self, members: dict[str, list[str]], aliases: dict[str, list[str]]) -> None:
        self.members = members
        self.aliases = aliases
        self.member_reads: list[list[str]] = []
        self.alias_reads: list[list[str]] = []

    async def joined_local_members(
        self, room_ids: Collection[str], server_name: str
    ) -> dict[str, list[str]]:
        self.member_reads.append(sorted(room_ids))
        return {room_id: list(self.members.get(room_id, [])) for room_id in room_ids}

    async def local_aliases(self, room_ids: Collection[str]) -> dict[str, list[str]]:
        self.alias_reads.append(sorted(room_ids))
        return {r: self.aliases[r] for r in room_ids if r in self.aliases}

    async def canonical_alias_events(self, room_ids: Collection[str]) -> dict[str, str]:
        return {}


class NoLoader:
    async def get_events(self, event_ids: Any) -> dict[str, Event]:
        return {}


def bridge() -> AppService:
    return AppService(
        id="bridge",
        url="http://127.0.0.1:1",
        as_token="as",
        hs_token="hs",
        sender=f"@bridge_bot:{SERVER}",
        users=(Namespace(re.compile("@bridge_.*"), True),),
        aliases=(Namespace(re.compile("#bridge_.*"), True),),
        rooms=(Namespace(re.compile("!portal_.*"), False),),
    )


def message(n: int, room_id: str, sender: str = f"@alice:{SERVER}") -> StreamEvent:
    return StreamEvent(f"$e{n}", n, room_id, "m.room.message", None, sender)


def membership(room_id: str, user_id: str, value: str) -> Event:
    pdu = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": user_id,
        "state_key": user_id,
        "content": {"membership": value},
    }
    return Event(pdu, KNOWN_ROOM_VERSIONS["10"], f"${room_id}{user_id}{value}")


def interest(streams: CountingStreams) -> AppServiceInterest:
    return AppServiceInterest(streams, NoLoader(), SERVER)  # type: ignore[arg-type]


async def test_members_of_many_rooms_are_read_once_and_then_remembered() -> None:
    rooms = [f"!room{n}:{SERVER}" for n in range(50)]
    streams = CountingStreams(
        members={rooms[3]: [f"@bridge_puppet:{SERVER}"], rooms[7]: [f"@alice:{SERVER}"]},
        aliases={rooms[9]: [f"#bridge_irc:{SERVER}"], rooms[11]: [f"#people:{SERVER}"]},
    )
    deciding = interest(streams)
    events = [message(n, rooms[n % 50]) for n in range(500)]

    wanted = await deciding.interesting_events(bridge(), events)

    assert {e.room_id for e in wanted} == {rooms[3], rooms[9]}
    assert [e.stream_ordering for e in wanted] == sorted(e.stream_ordering for e in wanted)
    # one read for the 50 rooms, not one per event or per room
    assert streams.member_reads == [sorted(rooms)]
    assert len(streams.alias_reads) == 1 and rooms[3] not in streams.alias_reads[0]

    await deciding.interesting_events(bridge(), events)
    assert len(streams.member_reads) == 1


async def test_a_local_membership_change_forgets_only_that_room() -> None:
    room, other = f"!room:{SERVER}", f"!other:{SERVER}"
    streams = CountingStreams(members={}, aliases={})
    deciding = interest(streams)
    assert await deciding.interesting_rooms(bridge(), [room, other]) == set()

    puppet = f"@bridge_puppet:{SERVER}"
    streams.members[room] = [puppet]
    # another server's user joining changes nothing the cache holds
    await deciding.on_persisted([membership(room, "@bob:elsewhere.example", "join")], 1)
    assert await deciding.interesting_rooms(bridge(), [room, other]) == set()
    await deciding.on_persisted([membership(room, puppet, "join")], 2)
    assert await deciding.interesting_rooms(bridge(), [room, other]) == {room}
    assert streams.member_reads[-1] == [room]


async def test_its_users_events_and_memberships_and_its_room_regex_need_no_lookup() -> None:
    streams = CountingStreams(members={}, aliases={})
    deciding = interest(streams)
    invite = StreamEvent(
        "$invite", 2, f"!dm:{SERVER}", "m.room.member", f"@bridge_ghost:{SERVER}", "@a:x.org"
    )
    events = [
        message(1, f"!a:{SERVER}", sender=f"@bridge_bot:{SERVER}"),
        invite,
        message(3, f"!portal_1:{SERVER}"),
    ]
    assert await deciding.interesting_events(bridge(), events) == events
    assert streams.member_reads == [] and streams.alias_reads == []


async def test_presence_and_device_lists_follow_shared_rooms() -> None:
    room = f"!room:{SERVER}"
    streams = CountingStreams(members={room: [f"@bridge_puppet:{SERVER}"]}, aliases={})

    async def joined_rooms_of(user_ids: Collection[str]) -> dict[str, set[str]]:
        return {u: ({room} if u == f"@alice:{SERVER}" else set()) for u in user_ids}

    streams.joined_rooms_of = joined_rooms_of  # type: ignore[attr-defined]
    deciding = interest(streams)
    users = [f"@alice:{SERVER}", f"@carol:{SERVER}", f"@bridge_x:{SERVER}"]
    assert await deciding.interested_in_users(bridge(), users) == {
        f"@alice:{SERVER}",
        f"@bridge_x:{SERVER}",
    }
