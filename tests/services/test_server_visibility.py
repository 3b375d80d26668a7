"""History visibility for servers (services/federation/server_visibility.py) as the history
endpoints apply it, on both engines: a remote server whose user joins, is invited, or
leaves a local room, with the room's history_visibility changing around it. The endpoints
themselves over HTTP are in tests/federation/test_history_serving.py."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.services.federation.history import FederationHistory
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.federation.server_visibility import ServerVisibility, visible_to_server
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.services.rooms.room_access import RoomAccess
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender
from ranvier.storage.database import Database
from tests.services.test_persist_federated import CAROL, REMOTE, V10, remote_event
from tests.services.test_room_sender import ALICE, SERVER, create_room, message, new_sender

ELSEWHERE = "elsewhere.localhost"


@pytest.mark.parametrize(
    ("visibility", "memberships", "in_room_now", "visible"),
    [
        ("world_readable", [], False, True),
        ("shared", [], True, True),
        ("shared", [], False, False),
        ("shared", ["join"], False, True),
        ("invited", ["invite"], False, True),
        ("invited", ["leave", "invite"], True, True),
        ("invited", ["leave"], True, False),
        ("joined", ["invite"], True, False),
        ("joined", ["ban", "join"], True, True),
        ("joined", [], True, False),
    ],
)
def test_the_rule(
    visibility: str, memberships: list[str], in_room_now: bool, visible: bool
) -> None:
    assert visible_to_server(visibility, memberships, in_room_now=in_room_now) is visible


def history_service(database: Database, sender: RoomEventSender) -> FederationHistory:
    loader = sender.loader
    return FederationHistory(
        database,
        loader,
        ServerAclChecker(RoomAccess(sender, loader)),
        ServerVisibility(database, loader, Redactions(database, loader)),
        SERVER,
    )


async def set_visibility(sender: RoomEventSender, room_id: str, value: str) -> Event:
    return await sender.send(
        EventTemplate(
            "m.room.history_visibility", ALICE, {"history_visibility": value}, room_id, ""
        )
    )


async def remote_member(sender: RoomEventSender, room_id: str, membership: str) -> Event:
    """carol's membership, sent by her server on top of the room's head."""
    head = await sender.head(room_id)
    before = dict(head.state)
    prev = list((await sender.loader.get_events(p.event_id for p in head.extremities)).values())
    event = await remote_event(
        sender,
        EventTemplate("m.room.member", CAROL, {"membership": membership}, room_id, CAROL),
        prev,
        before,
    )
    await sender.persist_federated(room_id, V10, [FederatedEvent(event, before)])
    return event


async def event_body(history: FederationHistory, event_id: str, origin: str = REMOTE) -> Any:
    (pdu,) = (await history.get_event(origin, event_id))["pdus"]
    return pdu["content"].get("body")


async def test_joined_history_from_the_servers_join_on(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    await set_visibility(sender, room_id, "joined")
    before = await sender.send(message(room_id, "before"))
    history = history_service(database, sender)
    # no user of the remote server in the room yet
    with pytest.raises(MatrixError) as refused:
        await history.get_event(REMOTE, before.event_id)
    assert (refused.value.status, refused.value.errcode) == (403, "M_FORBIDDEN")
    join = await remote_member(sender, room_id, "join")
    after = await sender.send(message(room_id, "after"))
    assert await event_body(history, after.event_id) == "after"
    assert await event_body(history, before.event_id) is None  # served redacted
    pdus = (await history.backfill(REMOTE, room_id, [after.event_id], 3))["pdus"]
    assert [p["content"].get("body") for p in pdus] == ["after", None, None]
    assert pdus[1]["content"] == {"membership": "join"}  # carol's join: visible at it
    assert pdus[2]["content"] == {}  # before
    missing = await history.get_missing_events(
        REMOTE, room_id, [], [after.event_id], limit=2, min_depth=0
    )
    assert [e["content"] for e in missing["events"]] == [{}, {"membership": "join"}]
    # a server with nobody in the room still gets nothing
    with pytest.raises(MatrixError):
        await history.get_event(ELSEWHERE, after.event_id)
    with pytest.raises(MatrixError):
        await history.state_ids(ELSEWHERE, room_id, after.event_id)
    state = await history.state_ids(REMOTE, room_id, after.event_id)
    assert join.event_id in state["pdu_ids"]


async def test_shared_history_is_all_visible_to_a_server_in_the_room(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)  # shared
    before = await sender.send(message(room_id, "before"))
    await remote_member(sender, room_id, "join")
    history = history_service(database, sender)
    assert await event_body(history, before.event_id) == "before"


async def test_invited_history_from_the_invite_on(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    await set_visibility(sender, room_id, "invited")
    before = await sender.send(message(room_id, "before invite"))
    await sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "invite"}, room_id, CAROL)
    )
    while_invited = await sender.send(message(room_id, "while invited"))
    await remote_member(sender, room_id, "join")
    history = history_service(database, sender)
    assert await event_body(history, while_invited.event_id) == "while invited"
    assert await event_body(history, before.event_id) is None


async def test_a_server_whose_users_left_reads_nothing(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    message_event = await sender.send(message(room_id, "hello"))
    await remote_member(sender, room_id, "join")
    while_joined = await sender.send(message(room_id, "while joined"))
    history = history_service(database, sender)
    assert await event_body(history, message_event.event_id) == "hello"
    await remote_member(sender, room_id, "leave")
    with pytest.raises(MatrixError) as refused:
        await history.get_event(REMOTE, message_event.event_id)
    assert refused.value.status == 403
    # unless the room becomes world_readable: then what was world_readable is visible
    await set_visibility(sender, room_id, "world_readable")
    later = await sender.send(message(room_id, "later"))
    assert await event_body(history, later.event_id) == "later"
    # what carol saw joined stays visible; shared history from before her join does not,
    # now that her server is no longer in the room
    assert await event_body(history, while_joined.event_id) == "while joined"
    assert await event_body(history, message_event.event_id) is None


async def test_state_before_a_state_event_holds_what_it_replaced(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    await remote_member(sender, room_id, "join")
    old_levels = (await sender.head(room_id)).state[("m.room.power_levels", "")]
    levels = await sender.send(
        EventTemplate("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, room_id, "")
    )
    topic = await sender.send(EventTemplate("m.room.topic", ALICE, {"topic": "t"}, room_id, ""))
    history = history_service(database, sender)
    at_levels = set((await history.state_ids(REMOTE, room_id, levels.event_id))["pdu_ids"])
    assert old_levels in at_levels and levels.event_id not in at_levels
    at_topic = set((await history.state_ids(REMOTE, room_id, topic.event_id))["pdu_ids"])
    # no topic before the first one
    assert at_topic == at_levels - {old_levels} | {levels.event_id}
    full = await history.state(REMOTE, room_id, topic.event_id)
    assert sorted(pdu["type"] for pdu in full["pdus"]) == sorted(
        [
            "m.room.create",
            "m.room.member",
            "m.room.member",
            "m.room.power_levels",
            "m.room.join_rules",
            "m.room.history_visibility",
        ]
    )


async def test_state_is_served_with_redactions_applied(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    await remote_member(sender, room_id, "join")
    topic = await sender.send(
        EventTemplate("m.room.topic", ALICE, {"topic": "secret plans"}, room_id, "")
    )
    await sender.send(EventTemplate("m.room.redaction", ALICE, {}, room_id, redacts=topic.event_id))
    later = await sender.send(message(room_id, "later"))
    history = history_service(database, sender)
    full = await history.state(REMOTE, room_id, later.event_id)
    (served,) = [pdu for pdu in full["pdus"] if pdu["type"] == "m.room.topic"]
    assert served["content"] == {}
    assert await event_body(history, later.event_id) == "later"


async def test_outliers_rejected_and_soft_failed_events(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await remote_member(sender, room_id, "join")
    state = dict((await sender.head(room_id)).state)
    hidden = []
    for body in ("soft", "rejected", "outlier"):
        hidden.append(
            await remote_event(
                sender,
                EventTemplate(
                    "m.room.message", CAROL, {"msgtype": "m.text", "body": body}, room_id
                ),
                [join],
                state,
            )
        )
    soft, rejected, outlier = hidden
    await sender.persist_federated(
        room_id,
        V10,
        [
            FederatedEvent(soft, state, soft_failed=True),
            FederatedEvent(rejected, state, rejected_reason="auth"),
            FederatedEvent(outlier, None, outlier=True),
        ],
    )
    history = history_service(database, sender)
    # each is served by ID, as Synapse does, whatever became of it here
    for event in hidden:
        assert await event_body(history, event.event_id) == event.content["body"]
    # no state is known at an outlier; a rejected event is no point in the room
    for event in (outlier, rejected):
        with pytest.raises(MatrixError) as refused:
            await history.state_ids(REMOTE, room_id, event.event_id)
        assert (refused.value.status, refused.value.errcode) == (404, "M_NOT_FOUND")
    with pytest.raises(MatrixError):
        await history.event_auth(REMOTE, room_id, rejected.event_id)
    assert len((await history.event_auth(REMOTE, room_id, outlier.event_id))["auth_chain"]) > 0
    # backfill walks the DAG: the soft-failed event is in it, the rejected one is not served
    # and outliers are not walked
    seeds = [soft.event_id, rejected.event_id, outlier.event_id]
    pdus = (await history.backfill(REMOTE, room_id, seeds, 10))["pdus"]
    bodies = [p["content"].get("body") for p in pdus]
    assert "soft" in bodies and "rejected" not in bodies and "outlier" not in bodies
    assert pdus[1]["content"] == {"membership": "join"}
