"""POST /user_directory/search over real HTTP on both engines: who finds whom (shared rooms,
public rooms, world_readable rooms, strangers), updates on profile changes, leaving and join
rule changes, `limited`, the errors, and regenerating the directory through the admin API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, make_admin, register

CLIENT = "/_matrix/client/v3"
ADMIN = "/_synapse/admin/v1/background_updates"


def start(
    tmp_path_factory: pytest.TempPathFactory, database: dict[str, Any], **overrides: Any
) -> RunningServer:
    port = free_port()
    config = write_test_config(
        tmp_path_factory.mktemp("hs"), database, port, **REGISTRATION_CONFIG, **overrides
    )
    return start_server(config, port)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    running = start(tmp_path_factory, module_database)
    yield running
    assert running.stop() == 0, running.log()


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def join(server: RunningServer, session: Session, room_id: str) -> None:
    reply = authed(session, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {})
    assert reply.status == 200, reply.body


def search(server: RunningServer, session: Session, term: str, **extra: Any) -> Reply:
    body = {"search_term": term, **extra}
    return authed(session, "POST", server.url + CLIENT + "/user_directory/search", body)


def found(server: RunningServer, session: Session, term: str) -> list[str]:
    reply = search(server, session, term)
    assert reply.status == 200, reply.body
    return [entry["user_id"] for entry in reply.json()["results"]]


def test_co_members_of_a_private_room_find_each_other(server: RunningServer) -> None:
    alice, bob = register(server.url, "pia"), register(server.url, "pete")
    stranger = register(server.url, "stan")
    room_id = create_room(server, alice, preset="private_chat", invite=[bob.user_id])
    assert found(server, alice, "pete") == []  # invited is not joined
    join(server, bob, room_id)
    assert found(server, alice, "pete") == [bob.user_id]
    assert found(server, bob, "pia") == [alice.user_id]
    # the private room hides its members from everyone else
    assert found(server, stranger, "pia") == []
    assert found(server, stranger, "pete") == []

    # leaving ends it
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/leave", {})
    assert reply.status == 200, reply.body
    assert found(server, alice, "pete") == []


def test_members_of_public_rooms_are_found_by_anyone(server: RunningServer) -> None:
    owner, stranger = register(server.url, "olga"), register(server.url, "sid")
    room_id = create_room(server, owner, preset="public_chat")
    assert found(server, stranger, "olga") == [owner.user_id]
    # the room turning invite-only hides its members again
    url = f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.join_rules"
    reply = authed(owner, "PUT", url, {"join_rule": "invite"})
    assert reply.status == 200, reply.body
    assert found(server, stranger, "olga") == []


def test_members_of_world_readable_rooms_are_found_by_anyone(server: RunningServer) -> None:
    owner, stranger = register(server.url, "wanda"), register(server.url, "will")
    room_id = create_room(server, owner, preset="private_chat")
    assert found(server, stranger, "wanda") == []
    url = f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.history_visibility"
    reply = authed(owner, "PUT", url, {"history_visibility": "world_readable"})
    assert reply.status == 200, reply.body
    assert found(server, stranger, "wanda") == [owner.user_id]


def test_users_find_themselves_only_through_public_rooms(server: RunningServer) -> None:
    # SyTest 52user-directory "Users appear/disappear from directory when join_rules are
    # changed" and "... but history_visibility is world_readable": a user searching for
    # their own name, while in one room with its creator
    creator, user = register(server.url, "ceres"), register(server.url, "selma")
    room_id = create_room(server, creator, preset="private_chat", invite=[user.user_id])
    join(server, user, room_id)
    assert found(server, user, "selma") == []
    assert found(server, user, "ceres") == [creator.user_id]

    def put(key: str, content: dict[str, Any]) -> None:
        url = f"{server.url}{CLIENT}/rooms/{room_id}/state/{key}"
        reply = authed(creator, "PUT", url, content)
        assert reply.status == 200, reply.body

    put("m.room.join_rules", {"join_rule": "public"})
    assert found(server, user, "selma") == [user.user_id]
    put("m.room.history_visibility", {"history_visibility": "world_readable"})
    put("m.room.join_rules", {"join_rule": "invite"})
    # world_readable history still makes the room public to the directory
    assert found(server, user, "selma") == [user.user_id]
    put("m.room.history_visibility", {"history_visibility": "shared"})
    assert found(server, user, "selma") == []


def test_profile_changes_show_at_once(server: RunningServer) -> None:
    user, searcher = register(server.url, "prof"), register(server.url, "quinn")
    create_room(server, user, preset="public_chat")
    base = f"{server.url}{CLIENT}/profile/{user.user_id}"
    reply = authed(user, "PUT", base + "/displayname", {"displayname": "Zelda Moonbeam"})
    assert reply.status == 200, reply.body
    reply = authed(user, "PUT", base + "/avatar_url", {"avatar_url": "mxc://test.localhost/zm"})
    assert reply.status == 200, reply.body
    reply = search(server, searcher, "moon")
    assert reply.json() == {
        "limited": False,
        "results": [
            {
                "user_id": user.user_id,
                "display_name": "Zelda Moonbeam",
                "avatar_url": "mxc://test.localhost/zm",
            }
        ],
    }
    # every word must match the start of a word, case-insensitively
    assert found(server, searcher, "ZELDA moon") == [user.user_id]
    assert found(server, searcher, "zelda sun") == []
    assert found(server, searcher, "oonbeam") == []
    reply = authed(user, "PUT", base + "/displayname", {"displayname": "Sunny"})
    assert reply.status == 200, reply.body
    assert found(server, searcher, "moon") == []
    assert found(server, searcher, "sunny") == [user.user_id]
    # the user ID's words match too
    assert found(server, searcher, "prof") == [user.user_id]


def test_limit_and_limited(server: RunningServer) -> None:
    owner = register(server.url, "lim0")
    room_id = create_room(server, owner, preset="public_chat")
    for n in (1, 2):
        join(server, register(server.url, f"lim{n}"), room_id)
    reply = search(server, owner, "lim", limit=2)
    body = reply.json()
    assert len(body["results"]) == 2 and body["limited"] is True
    body = search(server, owner, "lim", limit=3).json()
    assert len(body["results"]) == 3 and body["limited"] is False
    # by default up to ten
    assert len(search(server, owner, "lim").json()["results"]) == 3


def test_search_errors(server: RunningServer) -> None:
    user = register(server.url, "errol")
    url = server.url + CLIENT + "/user_directory/search"
    missing = authed(user, "POST", url, {})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    wrong_type = authed(user, "POST", url, {"search_term": 5})
    assert (wrong_type.status, wrong_type.errcode) == (400, "M_BAD_JSON")
    bad_limit = authed(user, "POST", url, {"search_term": "x", "limit": "ten"})
    assert (bad_limit.status, bad_limit.errcode) == (400, "M_BAD_JSON")
    negative = authed(user, "POST", url, {"search_term": "x", "limit": -1})
    assert (negative.status, negative.errcode) == (400, "M_BAD_JSON")
    not_json = authed(user, "POST", url, b"nope")
    assert (not_json.status, not_json.errcode) == (400, "M_NOT_JSON")
    anonymous = request("POST", url, {"search_term": "x"})
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")
    assert search(server, user, "").json() == {"results": [], "limited": False}


def test_admins_regenerate_the_directory(server: RunningServer) -> None:
    admin = make_admin(server.config_path, "diradmin")
    user = register(server.url, "gina")
    create_room(server, user, preset="public_chat")
    start_job = server.url + ADMIN + "/start_job"
    # paused, so the job stays queued between the two requests
    reply = authed(admin, "POST", server.url + ADMIN + "/enabled", {"enabled": False})
    assert reply.status == 200, reply.body
    try:
        first = authed(admin, "POST", start_job, {"job_name": "regenerate_directory"})
        assert (first.status, first.json()) == (200, {})
        again = authed(admin, "POST", start_job, {"job_name": "regenerate_directory"})
        assert (again.status, again.errcode) == (400, "M_UNKNOWN")
    finally:
        reply = authed(admin, "POST", server.url + ADMIN + "/enabled", {"enabled": True})
        assert reply.status == 200, reply.body
    unknown = authed(admin, "POST", start_job, {"job_name": "make_coffee"})
    assert (unknown.status, unknown.errcode) == (400, "M_UNKNOWN")
    missing = authed(admin, "POST", start_job, {})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    not_admin = authed(user, "POST", start_job, {"job_name": "regenerate_directory"})
    assert (not_admin.status, not_admin.errcode) == (403, "M_FORBIDDEN")
    # once the rebuild ran, public room members are found as before
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        retry = authed(admin, "POST", start_job, {"job_name": "regenerate_directory"})
        if retry.status == 200:
            break
        time.sleep(0.2)
    assert retry.status == 200, "the rebuild never finished"
    assert found(server, admin, "gina") == [user.user_id]


def test_search_all_users_and_switched_off(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> None:
    everyone = start(
        tmp_path_factory,
        module_database,
        user_directory={"search_all_users": True, "prefer_local_users": True},
    )
    try:
        loner, searcher = register(everyone.url, "lonely"), register(everyone.url, "seeker")
        assert found(everyone, searcher, "lonely") == [loner.user_id]
    finally:
        assert everyone.stop() == 0, everyone.log()
    off = start(tmp_path_factory, module_database, user_directory={"enabled": False})
    try:
        owner, searcher = register(off.url, "hidden"), register(off.url, "looker")
        create_room(off, owner, preset="public_chat")
        assert search(off, searcher, "hidden").json() == {"results": [], "limited": False}
    finally:
        assert off.stop() == 0, off.log()
