"""make_join's template and refusals, on both engines (services/federation/joins.py over the
room sender's `build_template`); tests/federation/test_queries_and_make_join.py takes the
same endpoint over signed HTTPS."""

from __future__ import annotations

import pytest

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat
from ranvier.services.federation.joins import MakeJoinService
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.room_access import RoomAccess
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from tests.services.test_room_sender import ALICE, SERVER, create_room, message, new_sender

REMOTE = "remote.example:8448"
CAROL = f"@carol:{REMOTE}"


def service(database: Database, sender: RoomEventSender) -> MakeJoinService:
    acl = ServerAclChecker(RoomAccess(sender, sender.loader))

    async def no_profile(user_id: str) -> tuple[str | None, str | None]:
        return None, None

    membership = MembershipService(sender, SERVER, no_profile)
    return MakeJoinService(database, sender, membership, acl, SERVER)


async def refusal(
    joins: MakeJoinService, room_id: str, user_id: str = CAROL, ver: tuple[str, ...] = ()
) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        await joins.make_join(REMOTE, room_id, user_id, list(ver) or list(KNOWN_ROOM_VERSIONS))
    return caught.value


@pytest.mark.parametrize("version", ["1", "3", "10", "11", "12"])
async def test_template_is_the_join_this_server_would_build(
    database: Database, version: str
) -> None:
    sender = await new_sender(database)
    room_version = KNOWN_ROOM_VERSIONS[version]
    room_id = await create_room(sender, room_version)
    last = await sender.send(message(room_id, "before the join"))
    head = await sender.head(room_id)
    before = await event_store.get_forward_extremities(database, room_id)

    answer = await service(database, sender).make_join(REMOTE, room_id, CAROL, [version])

    assert answer["room_version"] == version
    event = answer["event"]
    assert event["type"] == "m.room.member"
    assert event["room_id"] == room_id
    assert event["sender"] == event["state_key"] == CAROL
    assert event["content"] == {"membership": "join"}
    assert event["origin"] == SERVER
    assert isinstance(event["origin_server_ts"], int)
    assert event["depth"] == last.depth + 1
    # unsigned: the joining server hashes and signs it
    assert "signatures" not in event and "hashes" not in event
    create_id = head.state[("m.room.create", "")]
    wanted = {
        head.state[("m.room.join_rules", "")],
        head.state[("m.room.power_levels", "")],
    }
    if not room_version.room_id_from_create_event:
        wanted.add(create_id)  # from v12 the create event is not cited
    if room_version.event_format is EventFormat.V1:
        assert event["prev_events"] == [[last.event_id, {"sha256": last.pdu["hashes"]["sha256"]}]]
        assert {ref[0] for ref in event["auth_events"]} == wanted
        assert event["event_id"].endswith(f":{SERVER}")
    else:
        assert event["prev_events"] == [last.event_id]
        assert set(event["auth_events"]) == wanted
        assert "event_id" not in event
    # nothing was persisted: the room is as it was
    assert await event_store.get_forward_extremities(database, room_id) == before
    assert CAROL not in await state_store.get_members(database, room_id, ("join", "invite"))


async def test_a_member_who_may_not_join_is_refused(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    joins = service(database, sender)
    await sender.send(
        EventTemplate("m.room.join_rules", ALICE, {"join_rule": "invite"}, room_id, "")
    )
    error = await refusal(joins, room_id)
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")

    # invited, the same user gets a template
    await sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "invite"}, room_id, CAROL)
    )
    answer = await joins.make_join(REMOTE, room_id, CAROL, ["10"])
    assert answer["event"]["sender"] == CAROL

    # banned, not
    await sender.send(EventTemplate("m.room.member", ALICE, {"membership": "ban"}, room_id, CAROL))
    error = await refusal(joins, room_id)
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")


async def test_room_versions_the_joining_server_lacks(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["10"])
    joins = service(database, sender)
    error = await refusal(joins, room_id, ver=("9", "11"))
    assert (error.status, error.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert error.body()["room_version"] == "10"
    # no `ver` at all means ["1"]
    with pytest.raises(MatrixError) as caught:
        await joins.make_join(REMOTE, room_id, CAROL, [])
    assert caught.value.body()["room_version"] == "10"
    room_v1 = await create_room(sender, KNOWN_ROOM_VERSIONS["1"])
    assert (await joins.make_join(REMOTE, room_v1, CAROL, []))["room_version"] == "1"


async def test_users_of_other_servers_and_unknown_rooms(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["11"])
    joins = service(database, sender)
    for user in (ALICE, "@carol:remote.example", "@carol:other.example:8448", "carol"):
        error = await refusal(joins, room_id, user)
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN"), user
    error = await refusal(joins, f"!unknown:{SERVER}")
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


async def test_a_room_this_server_has_left(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["11"])
    await sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "leave"}, room_id, ALICE)
    )
    error = await refusal(service(database, sender), room_id)
    assert (error.status, error.errcode) == (404, "M_NOT_FOUND")


async def test_server_acl_is_checked_first(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, KNOWN_ROOM_VERSIONS["11"])
    joins = service(database, sender)
    acl = {"allow": ["*"], "deny": ["remote.example"]}
    await sender.send(EventTemplate("m.room.server_acl", ALICE, acl, room_id, ""))
    # denied whatever else is wrong with the request: the version, the user
    for ver, user in (((), CAROL), (("1",), CAROL), ((), ALICE)):
        error = await refusal(joins, room_id, user, ver)
        assert (error.status, error.errcode) == (403, "M_FORBIDDEN")
        assert "ACL" in error.error
    # other servers are still let in
    answer = await joins.make_join("other.example", room_id, "@dan:other.example", ["11"])
    assert answer["event"]["sender"] == "@dan:other.example"


def member(room_id: str, user_id: str, membership: str, sender: str | None = None) -> EventTemplate:
    return EventTemplate(
        "m.room.member", sender or user_id, {"membership": membership}, room_id, user_id
    )


async def test_restricted_rooms_name_who_vouches_for_the_join(database: Database) -> None:
    sender = await new_sender(database)
    joins = service(database, sender)
    version = KNOWN_ROOM_VERSIONS["10"]
    space = await create_room(sender, version)
    room_id = await create_room(sender, version)
    rule = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]}
    await sender.send(EventTemplate("m.room.join_rules", ALICE, rule, room_id, ""))

    # carol is in none of the allowed rooms
    error = await refusal(joins, room_id)
    assert (error.status, error.errcode) == (403, "M_FORBIDDEN")

    # once she is in the space, alice (who may invite) vouches for her
    await sender.send(member(space, CAROL, "join"))
    event = (await joins.make_join(REMOTE, room_id, CAROL, ["10"]))["event"]
    assert event["content"] == {
        "membership": "join",
        "join_authorised_via_users_server": ALICE,
    }

    # invited, she needs no one to vouch
    await sender.send(member(room_id, CAROL, "invite", sender=ALICE))
    event = (await joins.make_join(REMOTE, room_id, CAROL, ["10"]))["event"]
    assert event["content"] == {"membership": "join"}


async def test_restricted_rooms_this_server_cannot_judge(database: Database) -> None:
    sender = await new_sender(database)
    joins = service(database, sender)
    version = KNOWN_ROOM_VERSIONS["10"]
    room_id = await create_room(sender, version)
    # a space this server is not in
    rule = {
        "join_rule": "restricted",
        "allow": [{"type": "m.room_membership", "room_id": "!space:elsewhere.example"}],
    }
    await sender.send(EventTemplate("m.room.join_rules", ALICE, rule, room_id, ""))
    error = await refusal(joins, room_id)
    assert (error.status, error.errcode) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")
