"""Room directories and spaces between Ranvier and a real Synapse, both sharing their
directories over federation: each lists the other's public rooms, and a space on Synapse
with a child on Ranvier is walked from both sides (Synapse reads Ranvier's
/federation/v1/hierarchy, Ranvier reads Synapse's).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.harness import FederatingServer, FederationCA, federating, register
from tests.federation.replies import ok
from tests.federation.synapse_peer import (
    SynapsePeer,
    register_on_synapse,
    start_synapse_peer,
    synapse_python,
)
from tests.integration.matrix import CLIENT, Session

CLIENT_V1 = "/_matrix/client/v1"
Server = FederatingServer | SynapsePeer


@pytest.fixture(scope="module")
def ranvier(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    with federating(
        tmp_path_factory.mktemp("ranvier"),
        sqlite_section,
        test_ca,
        allow_public_rooms_over_federation=True,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def synapse(
    tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA
) -> Iterator[SynapsePeer]:
    peer = start_synapse_peer(
        synapse_python(),
        tmp_path_factory.mktemp("synapse"),
        test_ca,
        allow_public_rooms_over_federation=True,
        # Synapse publishes no room unless a rule allows it
        room_list_publication_rules=[{"action": "allow"}],
    )
    try:
        yield peer
    finally:
        assert peer.stop() == 0, peer.log()[-6000:]


def create_room(server: Server, session: Session, **body: Any) -> str:
    room_id: str = ok(server.authed(session, "POST", CLIENT + "/createRoom", body))["room_id"]
    return room_id


def listed(server: Server, session: Session, of: str) -> dict[str, dict[str, Any]]:
    page = ok(server.authed(session, "GET", f"{CLIENT}/publicRooms?server={quote(of)}"))
    return {room["room_id"]: room for room in page["chunk"]}


def walked(server: Server, session: Session, space: str) -> list[dict[str, Any]]:
    path = f"{CLIENT_V1}/rooms/{quote(space)}/hierarchy"
    rooms: list[dict[str, Any]] = ok(server.authed(session, "GET", path))["rooms"]
    return rooms


def test_each_lists_the_others_public_rooms(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    alice = register(ranvier, "alice")
    sam = register_on_synapse(synapse, "sam")
    on_synapse = create_room(
        synapse, sam, preset="public_chat", visibility="public", name="Synapse lobby", topic="S"
    )
    on_ranvier = create_room(
        ranvier, alice, preset="public_chat", visibility="public", name="Ranvier lobby"
    )
    # Synapse lists a new room once its room stats catch up
    deadline = time.monotonic() + 20
    while on_synapse not in (theirs := listed(ranvier, alice, synapse.server_name)):
        assert time.monotonic() < deadline, theirs
        time.sleep(0.2)
    assert theirs[on_synapse]["name"] == "Synapse lobby"
    assert theirs[on_synapse]["topic"] == "S"
    assert theirs[on_synapse]["num_joined_members"] == 1
    ours = listed(synapse, sam, ranvier.server_name)
    assert ours[on_ranvier]["name"] == "Ranvier lobby"
    assert ours[on_ranvier]["num_joined_members"] == 1


def test_a_space_on_synapse_with_a_child_on_ranvier(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    rosa = register(ranvier, "rosa")
    tess = register_on_synapse(synapse, "tess")
    space = create_room(
        synapse,
        tess,
        preset="public_chat",
        name="Synapse space",
        creation_content={"type": "m.space"},
    )
    child_here = create_room(ranvier, rosa, preset="public_chat", name="Ranvier child")
    child_there = create_room(synapse, tess, preset="public_chat", name="Synapse child")
    for child, server, order in (
        (child_here, ranvier.server_name, "a"),
        (child_there, synapse.server_name, "b"),
    ):
        path = f"{CLIENT}/rooms/{quote(space)}/state/m.space.child/{quote(child)}"
        ok(synapse.authed(tess, "PUT", path, {"via": [server], "order": order}))
    # Synapse asks Ranvier about its room
    from_synapse = walked(synapse, tess, space)
    assert [room["room_id"] for room in from_synapse] == [space, child_here, child_there]
    assert from_synapse[1]["name"] == "Ranvier child"
    assert from_synapse[1]["num_joined_members"] == 1
    # once Ranvier is in the space, it asks Synapse about Synapse's room
    join = f"{CLIENT}/join/{quote(space)}?server_name={quote(synapse.server_name)}"
    ok(ranvier.authed(rosa, "POST", join, {}))
    from_ranvier = walked(ranvier, rosa, space)
    assert [room["room_id"] for room in from_ranvier] == [space, child_here, child_there]
    assert from_ranvier[2]["name"] == "Synapse child"
    assert from_ranvier[2]["join_rule"] == "public"
    assert [c["state_key"] for c in from_ranvier[0]["children_state"]] == [child_here, child_there]
