"""Events from other servers entering a room through the sender (persist_federated), on both
engines: state groups, forward extremities, current state resolved at forks, and what
clients never see (outliers, soft-failed and rejected events)."""

from __future__ import annotations

from collections.abc import Mapping

from ranvier.protocol.event_builder import EventTemplate, PrevEvent, build_event
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from tests.services.test_room_sender import ALICE, create_room, message, new_sender

REMOTE = "remote.localhost"
CAROL = f"@carol:{REMOTE}"
REMOTE_KEY = ServerSigningKey.from_seed(b"\x02" * 32, "r")
V10 = KNOWN_ROOM_VERSIONS["10"]


async def remote_event(
    sender: RoomEventSender,
    template: EventTemplate,
    prev: list[Event],
    state: Mapping[tuple[str, str], str],
    version: RoomVersion = V10,
) -> Event:
    loaded = await sender.loader.get_events(state.values())
    return build_event(
        template,
        room_version=version,
        prev_events=[PrevEvent.of(p) for p in prev],
        current_state={key: loaded[eid] for key, eid in state.items()},
        server_name=REMOTE,
        signing_key=REMOTE_KEY,
    )


async def timeline_ids(database: Database, room_id: str) -> list[str]:
    positions = await event_store.paginate_room_events(
        database, room_id, backwards=False, start=None, stop=None, limit=100
    )
    return [p.event_id for p in positions]


async def state_at(sender: RoomEventSender, event_id: str) -> dict[tuple[str, str], str]:
    group = (await sender.loader.state_groups_of([event_id]))[event_id]
    return dict(await sender.loader.get_state_group(group))


async def join_carol(sender: RoomEventSender, room_id: str) -> Event:
    head = await sender.head(room_id)
    before = dict(head.state)
    prev = list((await sender.loader.get_events(p.event_id for p in head.extremities)).values())
    join = await remote_event(
        sender,
        EventTemplate("m.room.member", CAROL, {"membership": "join"}, room_id, CAROL),
        prev,
        before,
    )
    await sender.persist_federated(room_id, V10, [FederatedEvent(join, before)])
    return join


async def test_remote_events_join_the_timeline_state_and_extremities(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    position_before = sender.positions.current
    join = await join_carol(sender, room_id)
    assert sender.positions.current == position_before + 1
    current = await state_store.get_current_state_ids(database, room_id)
    assert current[("m.room.member", CAROL)] == join.event_id
    assert set(await state_store.get_members(database, room_id)) == {ALICE, CAROL}
    assert [e for e, _ in await event_store.get_forward_extremities(database, room_id)] == [
        join.event_id
    ]
    assert (await timeline_ids(database, room_id))[-1] == join.event_id
    assert (await state_at(sender, join.event_id)) == current
    # the next local event builds on the remote one
    sent = await sender.send(message(room_id, "hello carol"))
    assert sent.prev_event_ids == [join.event_id]


async def test_forks_give_several_extremities_and_a_resolved_state(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    # a remote message on one branch, and a local topic on the other
    remote_msg = await remote_event(
        sender,
        EventTemplate("m.room.message", CAROL, {"msgtype": "m.text", "body": "x"}, room_id),
        [join],
        state,
    )
    local = await sender.send(EventTemplate("m.room.topic", ALICE, {"topic": "t"}, room_id, ""))
    await sender.persist_federated(room_id, V10, [FederatedEvent(remote_msg, state)])
    extremities = {e for e, _ in await event_store.get_forward_extremities(database, room_id)}
    assert extremities == {local.event_id, remote_msg.event_id}
    current = await state_store.get_current_state_ids(database, room_id)
    assert current[("m.room.topic", "")] == local.event_id
    # the next local event merges the fork, on the resolved state
    merged = await sender.send(message(room_id, "merge"))
    assert set(merged.prev_event_ids) == extremities
    assert await state_at(sender, merged.event_id) == current
    extremities = {e for e, _ in await event_store.get_forward_extremities(database, room_id)}
    assert extremities == {merged.event_id}


async def test_soft_failed_rejected_and_outliers_are_never_served(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    position_before = sender.positions.current
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
    await sender.persist_federated(
        room_id,
        V10,
        [
            FederatedEvent(hidden[0], state, soft_failed=True),
            FederatedEvent(hidden[1], state, rejected_reason="auth"),
            FederatedEvent(hidden[2], None, outlier=True),
        ],
    )
    # no stream position, no extremity, no timeline
    assert sender.positions.current == position_before
    assert [e for e, _ in await event_store.get_forward_extremities(database, room_id)] == [
        join.event_id
    ]
    timeline = await timeline_ids(database, room_id)
    assert not {e.event_id for e in hidden} & set(timeline)
    stored = await event_store.get_events(database, [e.event_id for e in hidden])
    assert all(row.stream_ordering < 0 for row in stored.values())
    assert stored[hidden[1].event_id].rejected_reason == "auth"
    assert stored[hidden[2].event_id].outlier
    for event in hidden:
        assert await event_store.get_timeline_position(database, event.event_id) is None
    # a new sender (a restart) counts below the lowest hidden ordering
    again = await new_sender(database)
    assert again.hidden_orderings.value == -min(r.stream_ordering for r in stored.values())


def build(
    template: EventTemplate, prev: list[Event], state: Mapping[tuple[str, str], Event]
) -> Event:
    return build_event(
        template,
        room_version=V10,
        prev_events=[PrevEvent.of(p) for p in prev],
        current_state=state,
        server_name=REMOTE,
        signing_key=REMOTE_KEY,
    )


async def test_a_remote_room_is_created_from_its_state(database: Database) -> None:
    sender = await new_sender(database)
    room_id = f"!remote:{REMOTE}"
    create = build(EventTemplate("m.room.create", CAROL, {}, room_id, ""), [], {})
    state: dict[tuple[str, str], Event] = {("m.room.create", ""): create}
    chain = [create]
    for template in (
        EventTemplate("m.room.member", CAROL, {"membership": "join"}, room_id, CAROL),
        EventTemplate("m.room.power_levels", CAROL, {"users": {CAROL: 100}}, room_id, ""),
        EventTemplate("m.room.join_rules", CAROL, {"join_rule": "public"}, room_id, ""),
    ):
        event = build(template, [chain[-1]], state)
        chain.append(event)
        state[(event.type, event.state_key or "")] = event
    join = build(
        EventTemplate("m.room.member", ALICE, {"membership": "join"}, room_id, ALICE),
        [chain[-1]],
        state,
    )
    before = {key: event.event_id for key, event in state.items()}
    await sender.persist_federated(
        room_id,
        V10,
        [FederatedEvent(event, None, outlier=True) for event in chain]
        + [FederatedEvent(join, before)],
        new_room=True,
    )
    current = await state_store.get_current_state_ids(database, room_id)
    assert current == {**before, ("m.room.member", ALICE): join.event_id}
    assert await state_store.get_rooms_for_user(database, ALICE) == {room_id: "join"}
    assert await timeline_ids(database, room_id) == [join.event_id]
    head = await sender.head(room_id)
    assert head.room_version is V10
    assert [p.event_id for p in head.extremities] == [join.event_id]
    sent = await sender.send(message(room_id, "hi"))
    assert sent.prev_event_ids == [join.event_id]


async def test_an_outlier_takes_its_place_when_its_state_is_known(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    event = await remote_event(
        sender,
        EventTemplate("m.room.message", CAROL, {"msgtype": "m.text", "body": "late"}, room_id),
        [join],
        state,
    )
    await sender.persist_federated(room_id, V10, [FederatedEvent(event, None, outlier=True)])
    assert event.event_id not in await timeline_ids(database, room_id)
    # known again as an outlier: nothing to do
    await sender.persist_federated(room_id, V10, [FederatedEvent(event, None, outlier=True)])
    position_before = sender.positions.current
    await sender.persist_federated(room_id, V10, [FederatedEvent(event, state)])
    assert sender.positions.current == position_before + 1
    assert (await timeline_ids(database, room_id))[-1] == event.event_id
    stored = (await event_store.get_events(database, [event.event_id]))[event.event_id]
    assert not stored.outlier and stored.stream_ordering == position_before + 1
    assert [e for e, _ in await event_store.get_forward_extremities(database, room_id)] == [
        event.event_id
    ]
    # and a second delivery of the same event changes nothing
    await sender.persist_federated(room_id, V10, [FederatedEvent(event, state)])
    assert sender.positions.current == position_before + 1


async def test_backfilled_history_takes_its_place_before_the_timeline(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    base = (await sender.loader.get_events(join.prev_event_ids))[join.prev_event_ids[0]]
    state = await state_at(sender, base.event_id)
    old = await remote_event(
        sender,
        EventTemplate("m.room.message", CAROL, {"msgtype": "m.text", "body": "old"}, room_id),
        [base],
        state,
    )
    dave = f"@dave:{REMOTE}"
    old_join = await remote_event(
        sender,
        EventTemplate("m.room.member", dave, {"membership": "join"}, room_id, dave),
        [old],
        state,
    )
    after_old_join = {**state, ("m.room.member", dave): old_join.event_id}
    # known before as an outlier (say, from the state at a gap): backfilling promotes it
    await sender.persist_federated(room_id, V10, [FederatedEvent(old_join, None, outlier=True)])
    position_before = sender.positions.current
    current_before = await state_store.get_current_state_ids(database, room_id)
    await sender.persist_federated(
        room_id,
        V10,
        [FederatedEvent(old, state), FederatedEvent(old_join, state)],
        backfilled=True,
    )
    # nothing new for /sync, the room as it stands untouched
    assert sender.positions.current == position_before
    assert await state_store.get_current_state_ids(database, room_id) == current_before
    assert set(await state_store.get_members(database, room_id)) == {ALICE, CAROL}
    assert [e for e, _ in await event_store.get_forward_extremities(database, room_id)] == [
        join.event_id
    ]
    # in the timeline by depth; at the same depth, before what was there (carol's join)
    timeline = await timeline_ids(database, room_id)
    assert old.depth == join.depth
    assert timeline.index(old.event_id) < timeline.index(join.event_id)
    assert timeline.index(old.event_id) < timeline.index(old_join.event_id)
    stored = await event_store.get_events(database, [old.event_id, old_join.event_id])
    assert all(s.stream_ordering < 0 and not s.outlier for s in stored.values())
    assert await state_at(sender, old_join.event_id) == after_old_join
    assert await event_store.get_backfill_points(database, room_id) == []
    # the next local event still builds on the newest
    sent = await sender.send(message(room_id, "still here"))
    assert sent.prev_event_ids == [join.event_id]
