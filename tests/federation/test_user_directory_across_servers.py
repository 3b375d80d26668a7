"""The user directory finds other servers' users (spec client-server-api "User Directory"):
those who share a room with the searcher, and those joined to a public room here, with the
display name of their membership; not those who share nothing, and not after they leave.

A (`first`, SQLite) and B (`second`, PostgreSQL); each side searches for the other's user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok
from tests.federation.test_queries_and_make_join import create_room, set_profile
from tests.integration.matrix import CLIENT, Session


def found(server: FederatingServer, session: Session, term: str) -> dict[str, dict[str, Any]]:
    body = {"search_term": term, "limit": 10}
    results = ok(server.authed(session, "POST", CLIENT + "/user_directory/search", body))
    return {user["user_id"]: user for user in results["results"]}


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.1)


def join(server: FederatingServer, session: Session, room_id: str, via: str) -> None:
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(via)}"
    ok(server.authed(session, "POST", path, {}))


@pytest.fixture(scope="module")
def users(two_servers: ServerPair) -> dict[str, Session]:
    a, b = two_servers
    people = {
        "alice": register(a, "alice"),
        "dave": register(a, "dave"),
        "bob": register(b, "bob"),
        "eve": register(b, "eve"),
    }
    set_profile(a, people["alice"], displayname="Alice Liddell")
    set_profile(b, people["bob"], displayname="Bobby Tables", avatar_url="mxc://b/bobby")
    set_profile(b, people["eve"], displayname="Eve Online")
    return people


def test_users_who_share_a_private_room_find_each_other(
    two_servers: ServerPair, users: dict[str, Session]
) -> None:
    a, b = two_servers
    alice, bob, dave = users["alice"], users["bob"], users["dave"]
    room = create_room(b, bob, preset="private_chat", invite=[alice.user_id])
    eventually(lambda: a.authed(alice, "POST", f"{CLIENT}/join/{quote(room)}", {}).status == 200)
    eventually(lambda: bob.user_id in found(a, alice, "bobby"))
    assert found(a, alice, "tables")[bob.user_id] == {
        "user_id": bob.user_id,
        "display_name": "Bobby Tables",
        "avatar_url": "mxc://b/bobby",
    }
    # and the other way: B indexes A's user from her join
    eventually(lambda: alice.user_id in found(b, bob, "liddell"))
    assert found(b, bob, "alice")[alice.user_id]["display_name"] == "Alice Liddell"
    # dave shares nothing with bob, and the room is not public
    assert found(a, dave, "bobby") == {}
    # a new display name arrives with bob's membership
    set_profile(b, bob, displayname="Robert Tables")
    eventually(lambda: bob.user_id in found(a, alice, "robert"))
    assert found(a, alice, "bobby") == {}
    # once bob leaves, the only room A shared with him, A forgets him
    ok(b.authed(bob, "POST", f"{CLIENT}/rooms/{quote(room)}/leave", {}))
    eventually(lambda: found(a, alice, "robert") == {})


def test_remote_members_of_public_rooms_are_found_by_anyone(
    two_servers: ServerPair, users: dict[str, Session]
) -> None:
    a, _ = two_servers
    alice, dave, eve = users["alice"], users["dave"], users["eve"]
    b = two_servers.second
    room = create_room(a, alice, preset="public_chat")
    assert found(a, dave, "online") == {}
    join(b, eve, room, a.server_name)
    # dave is in no room with eve: the room being public is enough
    eventually(lambda: eve.user_id in found(a, dave, "online"))
    assert found(a, dave, "eve")[eve.user_id]["display_name"] == "Eve Online"
