"""Client event format, redactions and history visibility at the service level, on both
engines: what a client would be served, decided from the stored DAG and state groups."""

from __future__ import annotations

import secrets

import pytest

from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.rooms.client_events import ClientEventSerializer, client_event
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.services.rooms.visibility import HistoryVisibility, may_see, visibility_of
from ranvier.storage.database import Database

SERVER = "test.localhost"
ALICE = f"@alice:{SERVER}"
BOB = f"@bob:{SERVER}"
CAROL = f"@carol:{SERVER}"
KEY = ServerSigningKey.from_seed(b"\x02" * 32, "test")


class Services:
    def __init__(self, database: Database, sender: RoomEventSender, loader: EventLoader) -> None:
        self.sender = sender
        self.redactions = Redactions(database, loader)
        sender.listeners.connect(readable=[self.redactions.on_persisted])
        self.serializer = ClientEventSerializer(database, loader, self.redactions)
        self.visibility = HistoryVisibility(database, loader)


async def services(database: Database) -> Services:
    loader = EventLoader(database, events_cache_size=1000, state_cache_size=100)
    sender = await RoomEventSender.create(database, loader, SERVER, KEY)
    return Services(database, sender, loader)


async def new_room(s: Services, version: str = "10", visibility: str = "shared") -> str:
    room_version = KNOWN_ROOM_VERSIONS[version]
    users = {} if room_version.privileged_creators else {ALICE: 100}
    room_id, _ = await s.sender.create_room(
        room_version=room_version,
        creator=ALICE,
        create_content={},
        initial=[
            EventTemplate("m.room.member", ALICE, {"membership": "join"}, state_key=ALICE),
            EventTemplate("m.room.power_levels", ALICE, {"users": users}, state_key=""),
            EventTemplate("m.room.join_rules", ALICE, {"join_rule": "public"}, state_key=""),
            EventTemplate(
                "m.room.history_visibility",
                ALICE,
                {"history_visibility": visibility},
                state_key="",
            ),
        ],
        room_id=None
        if room_version.room_id_from_create_event
        else f"!{secrets.token_hex(8)}:{SERVER}",
    )
    return room_id


async def say(s: Services, room_id: str, body: str, sender: str = ALICE) -> Event:
    return await s.sender.send(
        EventTemplate("m.room.message", sender, {"msgtype": "m.text", "body": body}, room_id)
    )


async def member(s: Services, room_id: str, user: str, membership: str) -> Event:
    return await s.sender.send(
        EventTemplate("m.room.member", user, {"membership": membership}, room_id, user)
    )


# --- pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visibility", "membership", "joined_after", "expected"),
    [
        ("world_readable", None, False, True),
        ("shared", "join", False, True),
        ("shared", None, True, True),
        ("shared", None, False, False),
        ("shared", "leave", False, False),
        ("invited", "invite", False, True),
        ("invited", None, True, False),
        ("joined", "invite", False, False),
        ("joined", "join", False, True),
        ("joined", "leave", True, False),
    ],
)
def test_history_visibility_rules(
    visibility: str, membership: str | None, joined_after: bool, expected: bool
) -> None:
    assert may_see(visibility, membership, joined_after) is expected


def test_unknown_visibility_counts_as_shared() -> None:
    assert visibility_of({"history_visibility": "nonsense"}) == "shared"
    assert visibility_of(None) == "shared"
    assert visibility_of({"history_visibility": "joined"}) == "joined"


def test_client_event_hides_federation_fields_and_prunes_redacted_content() -> None:
    version = KNOWN_ROOM_VERSIONS["11"]
    pdu = {
        "type": "m.room.message",
        "room_id": "!r:x",
        "sender": ALICE,
        "content": {"body": "secret", "msgtype": "m.text"},
        "origin_server_ts": 1000,
        "depth": 5,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "x"},
        "signatures": {},
    }
    event = Event(pdu, version, "$e")
    served = client_event(event, now=1500, transaction_id="t1", relations={"m.thread": {}})
    assert served == {
        "content": {"body": "secret", "msgtype": "m.text"},
        "event_id": "$e",
        "origin_server_ts": 1000,
        "room_id": "!r:x",
        "sender": ALICE,
        "type": "m.room.message",
        "unsigned": {"age": 500, "transaction_id": "t1", "m.relations": {"m.thread": {}}},
    }
    because = {"type": "m.room.redaction", "event_id": "$r"}
    redacted = client_event(event, now=1500, redacted_because=because)
    assert redacted["content"] == {}
    assert redacted["unsigned"] == {"age": 500, "redacted_because": because, "redacted_by": "$r"}


# --- on both engines ------------------------------------------------------------------------


async def test_serialized_events_carry_prev_content_and_txn_ids(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s)
    first = await s.sender.send(EventTemplate("m.room.topic", ALICE, {"topic": "one"}, room_id, ""))
    second = await s.sender.send(
        EventTemplate("m.room.topic", ALICE, {"topic": "two"}, room_id, "")
    )
    sent = await s.sender.send(
        EventTemplate("m.room.message", ALICE, {"body": "hi"}, room_id),
        (ALICE, "DEV", f"send/{room_id}/m.room.message", "txn1"),
    )
    served = await s.serializer.serialize_events(
        [first, second, sent], requester_user_id=ALICE, requester_device_id="DEV"
    )
    assert "prev_content" not in served[0]["unsigned"]
    assert served[1]["unsigned"]["prev_content"] == {"topic": "one"}
    assert served[1]["unsigned"]["replaces_state"] == first.event_id
    assert served[1]["state_key"] == ""
    assert served[2]["unsigned"]["transaction_id"] == "txn1"
    # another device of the same user, or another user, never sees the transaction ID
    other = await s.serializer.serialize_events(
        [sent], requester_user_id=ALICE, requester_device_id="OTHER"
    )
    assert "transaction_id" not in other[0]["unsigned"]
    bob = await s.serializer.serialize_events(
        [sent], requester_user_id=BOB, requester_device_id="DEV"
    )
    assert "transaction_id" not in bob[0]["unsigned"]


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
async def test_redactions_apply_for_the_sender_or_the_redact_level(
    database: Database, version: str
) -> None:
    s = await services(database)
    room_id = await new_room(s, version)
    await member(s, room_id, BOB, "join")
    await member(s, room_id, CAROL, "join")
    bobs = await say(s, room_id, "bob's secret", BOB)
    carols = await say(s, room_id, "carol's words", CAROL)
    room_version = KNOWN_ROOM_VERSIONS[version]

    def redaction(sender: str, target: str) -> EventTemplate:
        content: dict[str, str] = {"reason": "spam"}
        if room_version.updated_redaction_rules:
            content["redacts"] = target
        return EventTemplate(
            "m.room.redaction",
            sender,
            content,
            room_id,
            redacts=None if "redacts" in content else target,
        )

    # Carol (power 0) may send a redaction of Bob's event, but it does not take effect
    # (rooms before v3 refuse it outright at the auth rules)
    try:
        await s.sender.send(redaction(CAROL, bobs.event_id))
    except Exception:
        assert version in {"1", "2"}
    served = await s.serializer.serialize_event(bobs, requester_user_id=ALICE)
    assert served["content"]["body"] == "bob's secret"

    # the sender redacts their own; the admin (Alice) redacts Carol's
    by_bob = await s.sender.send(redaction(BOB, bobs.event_id))
    by_alice = await s.sender.send(redaction(ALICE, carols.event_id))
    bob_served, carol_served, redaction_served = await s.serializer.serialize_events(
        [bobs, carols, by_bob], requester_user_id=CAROL
    )
    assert bob_served["content"] == {}
    assert bob_served["unsigned"]["redacted_because"]["event_id"] == by_bob.event_id
    assert bob_served["unsigned"]["redacted_because"]["content"]["reason"] == "spam"
    assert carol_served["content"] == {}
    assert carol_served["unsigned"]["redacted_because"]["sender"] == ALICE
    assert carol_served["unsigned"]["redacted_because"]["event_id"] == by_alice.event_id
    # both shapes of `redacts` are served, whatever the room version stores
    assert redaction_served["redacts"] == bobs.event_id


async def test_shared_history_is_visible_to_later_joiners(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s, visibility="shared")
    before = await say(s, room_id, "before bob")
    assert await s.visibility.filter_events_for_client(BOB, [before]) == []
    join = await member(s, room_id, BOB, "join")
    during = await say(s, room_id, "with bob")
    leave = await member(s, room_id, BOB, "leave")
    after = await say(s, room_id, "after bob")
    events = [before, join, during, leave, after]
    # joined after `before`: shared history; left before `after`: not that one
    assert await s.visibility.filter_events_for_client(BOB, events) == [before, join, during, leave]
    assert await s.visibility.filter_events_for_client(CAROL, events) == []


async def test_joined_history_starts_at_the_join(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s, visibility="joined")
    before = await say(s, room_id, "before bob")
    invite = await s.sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "invite"}, room_id, BOB)
    )
    invited = await say(s, room_id, "bob invited")
    join = await member(s, room_id, BOB, "join")
    during = await say(s, room_id, "with bob")
    leave = await member(s, room_id, BOB, "leave")
    after = await say(s, room_id, "after bob")
    events = [before, invite, invited, join, during, leave, after]
    # his own join and leave are visible on either side of the change; the invite is not
    # (neither "no membership" nor "invite" sees anything under `joined`)
    assert await s.visibility.filter_events_for_client(BOB, events) == [join, during, leave]


async def test_invited_history_starts_at_the_invite(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s, visibility="invited")
    before = await say(s, room_id, "before bob")
    invite = await s.sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "invite"}, room_id, BOB)
    )
    invited = await say(s, room_id, "bob invited")
    join = await member(s, room_id, BOB, "join")
    events = [before, invite, invited, join]
    assert await s.visibility.filter_events_for_client(BOB, events) == [invite, invited, join]


async def test_world_readable_and_visibility_changes(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s, visibility="world_readable")
    public = await say(s, room_id, "anyone")
    change = await s.sender.send(
        EventTemplate(
            "m.room.history_visibility", ALICE, {"history_visibility": "joined"}, room_id, ""
        )
    )
    private = await say(s, room_id, "members only")
    # the change itself is visible because the setting before it allowed it
    assert await s.visibility.filter_events_for_client(CAROL, [public, change, private]) == [
        public,
        change,
    ]
    access = await s.visibility.check_user_can_see_room(ALICE, room_id)
    assert access.membership == "join"
    with pytest.raises(Exception) as refused:
        await s.visibility.check_user_can_see_room(CAROL, room_id)
    assert getattr(refused.value, "errcode", None) == "M_FORBIDDEN"


async def test_departed_members_keep_access_up_to_their_leave(database: Database) -> None:
    s = await services(database)
    room_id = await new_room(s, visibility="world_readable")
    await member(s, room_id, BOB, "join")
    leave = await member(s, room_id, BOB, "leave")
    access = await s.visibility.check_user_can_see_room(BOB, room_id)
    assert access.departed and access.membership_event_id == leave.event_id
    # world_readable: a stranger reads the room as nobody in particular
    stranger = await s.visibility.check_user_can_see_room(CAROL, room_id)
    assert stranger.membership is None
    with pytest.raises(Exception) as refused:
        await s.visibility.check_user_can_see_room(CAROL, "!nowhere:" + SERVER)
    assert getattr(refused.value, "status", None) == 403
