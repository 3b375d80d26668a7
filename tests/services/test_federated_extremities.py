"""Forward extremities and memberships as remote events and local sends move them, on both
engines: an accepted event built on soft-failed ones replaces what those were built on,
the extremities beyond the deepest ten, which a local event does not name, stay, and a
membership that a fork's resolution changes moves its row like any other change."""

from __future__ import annotations

from ranvier.protocol.event_builder import EventTemplate
from ranvier.services.rooms.sender import MAX_PREV_EVENTS, FederatedEvent
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.memberships import get_membership_history
from tests.services.test_persist_federated import (
    CAROL,
    V10,
    join_carol,
    remote_event,
    state_at,
)
from tests.services.test_room_sender import ALICE, BOB, create_room, message, new_sender


def text(room_id: str, body: str) -> EventTemplate:
    return EventTemplate("m.room.message", CAROL, {"msgtype": "m.text", "body": body}, room_id)


async def extremities(database: Database, room_id: str) -> set[str]:
    return {e for e, _ in await event_store.get_forward_extremities(database, room_id)}


async def test_an_event_built_on_soft_failed_ones_replaces_what_they_built_on(
    database: Database,
) -> None:
    """J1 -> M1 -> SF1 -> SF2 -> M2 beside a local L1 on J1; M2 cites L1 and SF2: M1, which
    only soft-failed events cite, is no extremity once M2 is in."""
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    local = await sender.send(message(room_id, "L1"))
    m1 = await remote_event(sender, text(room_id, "M1"), [join], state)
    await sender.persist_federated(room_id, V10, [FederatedEvent(m1, state)])
    assert await extremities(database, room_id) == {local.event_id, m1.event_id}
    sf1 = await remote_event(sender, text(room_id, "SF1"), [m1], state)
    sf2 = await remote_event(sender, text(room_id, "SF2"), [sf1], state)
    # one soft-failed in an earlier batch, one in the same batch as M2
    await sender.persist_federated(room_id, V10, [FederatedEvent(sf1, state, soft_failed=True)])
    assert await extremities(database, room_id) == {local.event_id, m1.event_id}
    m2 = await remote_event(sender, text(room_id, "M2"), [local, sf2], state)
    await sender.persist_federated(
        room_id,
        V10,
        [FederatedEvent(sf2, state, soft_failed=True), FederatedEvent(m2, state)],
    )
    assert await extremities(database, room_id) == {m2.event_id}
    sent = await sender.send(message(room_id, "M3"))
    assert sent.prev_event_ids == [m2.event_id]


async def test_a_rejected_prev_event_is_walked_through_too(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    local = await sender.send(message(room_id, "L1"))
    m1 = await remote_event(sender, text(room_id, "M1"), [join], state)
    bad = await remote_event(sender, text(room_id, "bad"), [m1], state)
    m2 = await remote_event(sender, text(room_id, "M2"), [bad, local], state)
    await sender.persist_federated(
        room_id,
        V10,
        [
            FederatedEvent(m1, state),
            FederatedEvent(bad, state, rejected_reason="auth"),
            FederatedEvent(m2, state),
        ],
    )
    assert await extremities(database, room_id) == {m2.event_id}


async def test_extremities_beyond_the_deepest_ten_stay_after_a_local_send(
    database: Database,
) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    join = await join_carol(sender, room_id)
    state = await state_at(sender, join.event_id)
    forks = [
        await remote_event(sender, text(room_id, f"fork {i}"), [join], state)
        for i in range(MAX_PREV_EVENTS + 2)
    ]
    await sender.persist_federated(room_id, V10, [FederatedEvent(e, state) for e in forks])
    everything = {e.event_id for e in forks}
    assert await extremities(database, room_id) == everything
    first = await sender.send(message(room_id, "names ten"))
    assert len(first.prev_event_ids) == MAX_PREV_EVENTS
    unnamed = everything - set(first.prev_event_ids)
    assert len(unnamed) == 2
    assert await extremities(database, room_id) == unnamed | {first.event_id}
    # a second send on the cached head, and one on a head read again (a restart), keep them
    second = await sender.send(message(room_id, "names one"))
    assert await extremities(database, room_id) == unnamed | {second.event_id}
    again = await new_sender(database)
    third = await again.send(message(room_id, "names the rest"))
    assert set(third.prev_event_ids) == unnamed | {second.event_id}
    assert await extremities(database, room_id) == {third.event_id}


async def test_a_membership_changed_only_by_resolving_a_fork_moves_its_row(
    database: Database,
) -> None:
    """Bob (local) is banned by alice on one branch; on the other, carol, above alice,
    takes alice's power away. Resolving the fork applies carol's change first, so the ban
    fails: bob is joined again, with no event of his, and his membership row says so."""
    sender = await new_sender(database)
    room_id = await create_room(sender, V10)
    await join_carol(sender, room_id)
    await sender.send(
        EventTemplate("m.room.power_levels", ALICE, {"users": {ALICE: 50, CAROL: 100}}, room_id, "")
    )
    bob_join = await sender.send(
        EventTemplate("m.room.member", BOB, {"membership": "join"}, room_id, BOB)
    )
    state = await state_at(sender, bob_join.event_id)
    ban = await sender.send(
        EventTemplate("m.room.member", ALICE, {"membership": "ban"}, room_id, BOB)
    )
    assert (await get_membership_history(database, room_id, BOB)).latest_membership == "ban"
    demote = await remote_event(
        sender,
        EventTemplate("m.room.power_levels", CAROL, {"users": {ALICE: 0, CAROL: 100}}, room_id, ""),
        [bob_join],
        state,
    )
    await sender.persist_federated(room_id, V10, [FederatedEvent(demote, state)])
    current = await state_store.get_current_state_ids(database, room_id)
    assert current[("m.room.power_levels", "")] == demote.event_id
    assert current[("m.room.member", BOB)] == bob_join.event_id
    history = await get_membership_history(database, room_id, BOB)
    assert (history.latest_event_id, history.latest_membership) == (bob_join.event_id, "join")
    assert (
        history.latest_position is not None
        and history.latest_position
        > (await event_store.get_stream_orderings(database, [ban.event_id]))[ban.event_id]
    )
    assert (await state_store.get_rooms_for_user(database, BOB))[room_id] == "join"
