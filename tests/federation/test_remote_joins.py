"""Our users joining rooms of other servers (make_join, send_join, the room stored from the
answer), between a Ranvier on SQLite and one on PostgreSQL, both ways: by room ID with
`via`, and by the other server's alias; refusals reach the client."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.integration.matrix import CLIENT, Session


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def directions(pair: ServerPair) -> list[tuple[FederatingServer, FederatingServer]]:
    return [(pair.first, pair.second), (pair.second, pair.first)]


def create_public_room(server: FederatingServer, owner: Session, **extra: Any) -> str:
    body = {"preset": "public_chat", "name": "Over there", "topic": "far away", **extra}
    reply = server.authed(owner, "POST", CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def joined_room_state(
    server: FederatingServer, user: Session, room_id: str
) -> dict[tuple[str, str], Any]:
    reply = server.authed(user, "GET", CLIENT + "/sync?timeout=0")
    assert reply.status == 200, reply.body
    joined = reply.json()["rooms"]["join"]
    assert room_id in joined, reply.json()["rooms"]
    room = joined[room_id]
    events = [*room["state"]["events"], *room["timeline"]["events"]]
    return {(e["type"], e.get("state_key")): e for e in events if "state_key" in e}


def test_join_a_remote_room_by_id(two_servers: ServerPair) -> None:
    for here, there in directions(two_servers):
        owner = register(there, f"owner{secrets.token_hex(3)}")
        room_id = create_public_room(there, owner)
        joiner = register(here, f"joiner{secrets.token_hex(3)}")
        reply = here.authed(
            joiner, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={there.server_name}"
        )
        assert reply.status == 200, reply.body
        assert reply.json()["room_id"] == room_id
        # our side: the room is joined, with its state
        state = joined_room_state(here, joiner, room_id)
        assert state[("m.room.name", "")]["content"]["name"] == "Over there"
        assert state[("m.room.member", owner.user_id)]["content"]["membership"] == "join"
        assert state[("m.room.member", joiner.user_id)]["content"]["membership"] == "join"
        reply = here.authed(joiner, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members")
        assert set(reply.json()["joined"]) == {owner.user_id, joiner.user_id}
        # their side: the joiner is a member
        reply = there.authed(owner, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members")
        assert joiner.user_id in reply.json()["joined"]
        assert (
            joined_room_state(there, owner, room_id)[("m.room.member", joiner.user_id)]["content"][
                "membership"
            ]
            == "join"
        )


def sync_until_message(server: FederatingServer, user: Session, room_id: str, body: str) -> None:
    """Syncs (initial, then incremental) until the room's timeline shows `body`."""
    deadline = time.monotonic() + 20
    reply = server.authed(user, "GET", CLIENT + "/sync?timeout=0")
    while True:
        assert reply.status == 200, reply.body
        response = reply.json()
        room = response.get("rooms", {}).get("join", {}).get(room_id)
        events = room["timeline"]["events"] if room else []
        if any(e.get("content", {}).get("body") == body for e in events):
            return
        assert time.monotonic() < deadline, f"{body!r} never reached {user.user_id}"
        since = quote(response["next_batch"])
        reply = server.authed(user, "GET", f"{CLIENT}/sync?since={since}&timeout=1000")


def say(server: FederatingServer, user: Session, room_id: str, body: str) -> None:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
    reply = server.authed(user, "PUT", path, {"msgtype": "m.text", "body": body})
    assert reply.status == 200, reply.body


def test_messages_flow_both_ways_after_a_remote_join(two_servers: ServerPair) -> None:
    for here, there in directions(two_servers):
        owner = register(there, f"owner{secrets.token_hex(3)}")
        room_id = create_public_room(there, owner)
        joiner = register(here, f"joiner{secrets.token_hex(3)}")
        reply = here.authed(
            joiner, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={there.server_name}"
        )
        assert reply.status == 200, reply.body
        say(there, owner, room_id, "from the room's server")
        sync_until_message(here, joiner, room_id, "from the room's server")
        say(here, joiner, room_id, "from the joined server")
        sync_until_message(there, owner, room_id, "from the joined server")
        # both build on each other's events: a third message goes through too
        say(there, owner, room_id, "and back again")
        sync_until_message(here, joiner, room_id, "and back again")


def test_join_a_remote_room_by_alias(two_servers: ServerPair) -> None:
    for here, there in directions(two_servers):
        owner = register(there, f"owner{secrets.token_hex(3)}")
        local_alias = f"far{secrets.token_hex(3)}"
        room_id = create_public_room(there, owner, room_alias_name=local_alias)
        alias = f"#{local_alias}:{there.server_name}"
        joiner = register(here, f"joiner{secrets.token_hex(3)}")
        reply = here.authed(joiner, "POST", f"{CLIENT}/join/{quote(alias)}")
        assert reply.status == 200, reply.body
        assert reply.json()["room_id"] == room_id
        reply = here.authed(joiner, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.topic")
        assert reply.status == 200, reply.body
        assert reply.json()["topic"] == "far away"


def test_joining_an_invite_only_remote_room_is_refused(two_servers: ServerPair) -> None:
    here, there = two_servers.first, two_servers.second
    owner = register(there, f"owner{secrets.token_hex(3)}")
    reply = there.authed(owner, "POST", CLIENT + "/createRoom", {"preset": "private_chat"})
    room_id = reply.json()["room_id"]
    joiner = register(here, f"joiner{secrets.token_hex(3)}")
    reply = here.authed(
        joiner, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={there.server_name}"
    )
    assert reply.status == 403, reply.body
    assert reply.errcode == "M_FORBIDDEN"
    reply = here.authed(joiner, "GET", CLIENT + "/joined_rooms")
    assert room_id not in reply.json()["joined_rooms"]


def test_an_unsupported_room_version_reaches_the_client(
    two_servers: ServerPair, fake: FakeServer
) -> None:
    here = two_servers.first

    def incompatible(_request: ReceivedRequest) -> tuple[int, Any]:
        return 400, {
            "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
            "error": "no",
            "room_version": "org.example.future",
        }

    fake.route("GET", "/_matrix/federation/v1/make_join/", incompatible)
    joiner = register(here, f"joiner{secrets.token_hex(3)}")
    room_id = f"!future:{fake.server_name}"
    reply = here.authed(joiner, "POST", f"{CLIENT}/join/{quote(room_id)}")
    assert reply.status == 400, reply.body
    assert reply.errcode == "M_INCOMPATIBLE_ROOM_VERSION"
    assert reply.json()["room_version"] == "org.example.future"


def test_an_invited_user_joins_through_the_inviting_server(two_servers: ServerPair) -> None:
    here, there = two_servers.first, two_servers.second
    owner = register(there, f"owner{secrets.token_hex(3)}")
    guest = register(here, f"guest{secrets.token_hex(3)}")
    body = {"preset": "private_chat", "room_version": "12"}
    reply = there.authed(owner, "POST", CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id = reply.json()["room_id"]
    invite = {"user_id": guest.user_id}
    reply = there.authed(owner, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite)
    assert reply.status == 200, reply.body
    assert ":" not in room_id  # a v12 room ID names no server
    deadline = time.monotonic() + 20
    while True:
        reply = here.authed(guest, "GET", CLIENT + "/sync?timeout=0")
        if room_id in reply.json().get("rooms", {}).get("invite", {}):
            break
        assert time.monotonic() < deadline, reply.body
        time.sleep(0.2)
    # no server named: the inviter's is asked
    reply = here.authed(guest, "POST", f"{CLIENT}/rooms/{quote(room_id)}/join")
    assert reply.status == 200, reply.body
    reply = there.authed(owner, "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members")
    assert guest.user_id in reply.json()["joined"]
