"""Room aliases, canonical alias validation and the published room directory, over real
HTTP on both engines."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed, make_admin

CLIENT = "/_matrix/client/v3"
SERVER_NAME = "test.localhost"


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Session:
    return make_admin(server.config_path, "root")


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def join(server: RunningServer, session: Session, room_id: str) -> None:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/join"
    reply = authed(session, "POST", url, {})
    assert reply.status == 200, reply.body


def set_state(
    server: RunningServer, session: Session, room_id: str, event_type: str, content: Any
) -> Reply:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/{event_type}"
    return authed(session, "PUT", url, content)


def alias_url(server: RunningServer, alias: str) -> str:
    return f"{server.url}{CLIENT}/directory/room/{quote(alias)}"


def put_alias(server: RunningServer, session: Session, alias: str, room_id: str) -> Reply:
    return authed(session, "PUT", alias_url(server, alias), {"room_id": room_id})


def local_aliases(server: RunningServer, session: Session, room_id: str) -> Reply:
    return authed(session, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/aliases")


# -- aliases -----------------------------------------------------------------------------


def test_alias_lifecycle(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    alias = f"#lifecycle:{SERVER_NAME}"
    created = put_alias(server, alice, alias, room_id)
    assert (created.status, created.json()) == (200, {})

    # resolving needs no access token
    resolved = request("GET", alias_url(server, alias))
    assert resolved.status == 200, resolved.body
    assert resolved.json() == {"room_id": room_id, "servers": [SERVER_NAME]}
    assert local_aliases(server, alice, room_id).json() == {"aliases": [alias]}

    deleted = authed(alice, "DELETE", alias_url(server, alias))
    assert (deleted.status, deleted.json()) == (200, {})
    gone = request("GET", alias_url(server, alias))
    assert (gone.status, gone.errcode) == (404, "M_NOT_FOUND")
    assert local_aliases(server, alice, room_id).json() == {"aliases": []}
    again = authed(alice, "DELETE", alias_url(server, alias))
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")


def test_alias_in_use(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice, room_alias_name="taken-by-create")
    other = create_room(server, alice)
    reply = put_alias(server, alice, f"#taken-by-create:{SERVER_NAME}", other)
    assert (reply.status, reply.errcode) == (409, "M_ROOM_IN_USE")
    resolved = request("GET", alias_url(server, f"#taken-by-create:{SERVER_NAME}"))
    assert resolved.json()["room_id"] == room_id


@pytest.mark.parametrize(
    "alias",
    ["nohash:test.localhost", "#noserver", "#has space:test.localhost", "#:test.localhost"],
)
def test_invalid_aliases(server: RunningServer, alice: Session, alias: str) -> None:
    room_id = create_room(server, alice)
    assert (put_alias(server, alice, alias, room_id).errcode) == "M_INVALID_PARAM"
    resolved = request("GET", alias_url(server, alias))
    assert (resolved.status, resolved.errcode) == (400, "M_INVALID_PARAM")


def test_alias_put_refusals(
    server: RunningServer, alice: Session, bob: Session, admin: Session
) -> None:
    room_id = create_room(server, alice)
    too_long = "#" + "a" * 250 + f":{SERVER_NAME}"
    reply = put_alias(server, alice, too_long, room_id)
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    remote = put_alias(server, alice, "#elsewhere:other.example", room_id)
    assert (remote.status, remote.errcode) == (400, "M_INVALID_PARAM")
    no_room = authed(alice, "PUT", alias_url(server, f"#noroom:{SERVER_NAME}"), {})
    assert (no_room.status, no_room.errcode) == (400, "M_MISSING_PARAM")
    not_json = authed(alice, "PUT", alias_url(server, f"#noroom:{SERVER_NAME}"), b"{")
    assert (not_json.status, not_json.errcode) == (400, "M_NOT_JSON")
    # require_membership_for_aliases: bob is not in the room
    outsider = put_alias(server, bob, f"#outsider:{SERVER_NAME}", room_id)
    assert (outsider.status, outsider.errcode) == (403, "M_FORBIDDEN")
    unknown = put_alias(server, alice, f"#ghost:{SERVER_NAME}", f"!ghost:{SERVER_NAME}")
    assert (unknown.status, unknown.errcode) == (403, "M_FORBIDDEN")
    # admins need not be in the room, but the room must exist
    by_admin = put_alias(server, admin, f"#by-admin:{SERVER_NAME}", room_id)
    assert by_admin.status == 200, by_admin.body
    ghost = put_alias(server, admin, f"#ghost:{SERVER_NAME}", f"!ghost:{SERVER_NAME}")
    assert (ghost.status, ghost.errcode) == (404, "M_NOT_FOUND")
    unauthenticated = request(
        "PUT", alias_url(server, f"#anon:{SERVER_NAME}"), {"room_id": room_id}
    )
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_MISSING_TOKEN")


def test_remote_alias_of_a_server_out_of_reach(server: RunningServer) -> None:
    # other.example does not resolve: as Synapse, 502 (tests/federation/ resolve real ones)
    reply = request("GET", alias_url(server, "#room:other.example"))
    assert (reply.status, reply.errcode) == (502, "M_UNKNOWN")


def test_who_may_delete_an_alias(
    server: RunningServer, alice: Session, bob: Session, carol: Session, admin: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    join(server, carol, room_id)
    bobs = f"#bobs:{SERVER_NAME}"
    assert put_alias(server, bob, bobs, room_id).status == 200
    alices = f"#alices:{SERVER_NAME}"
    assert put_alias(server, alice, alices, room_id).status == 200

    # carol neither created it nor may change the canonical alias
    refused = authed(carol, "DELETE", alias_url(server, bobs))
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    # bob created his own; alice has the power in the room
    assert authed(bob, "DELETE", alias_url(server, bobs)).status == 200
    refused = authed(bob, "DELETE", alias_url(server, alices))
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    assert put_alias(server, bob, bobs, room_id).status == 200
    assert authed(alice, "DELETE", alias_url(server, bobs)).status == 200
    # a server admin may delete any alias
    assert authed(admin, "DELETE", alias_url(server, alices)).status == 200
    unauthenticated = request("DELETE", alias_url(server, alices))
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_MISSING_TOKEN")


def test_who_may_list_local_aliases(
    server: RunningServer, alice: Session, bob: Session, admin: Session
) -> None:
    room_id = create_room(server, alice, room_alias_name="listed")
    refused = local_aliases(server, bob, room_id)
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    by_admin = local_aliases(server, admin, room_id)
    assert by_admin.json() == {"aliases": [f"#listed:{SERVER_NAME}"]}
    unknown = local_aliases(server, bob, f"!unknown:{SERVER_NAME}")
    assert (unknown.status, unknown.errcode) == (403, "M_FORBIDDEN")
    invalid = local_aliases(server, bob, "not-a-room")
    assert (invalid.status, invalid.errcode) == (400, "M_INVALID_PARAM")
    # world readable history lets anyone see them
    reply = set_state(
        server,
        alice,
        room_id,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )
    assert reply.status == 200, reply.body
    assert local_aliases(server, bob, room_id).json() == {"aliases": [f"#listed:{SERVER_NAME}"]}
    unauthenticated = request("GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/aliases")
    assert (unauthenticated.status, unauthenticated.errcode) == (401, "M_MISSING_TOKEN")


def test_deleting_an_alias_updates_the_canonical_alias(
    server: RunningServer, alice: Session
) -> None:
    room_id = create_room(server, alice, room_alias_name="canon")
    alt = f"#canon-alt:{SERVER_NAME}"
    assert put_alias(server, alice, alt, room_id).status == 200
    content = {"alias": f"#canon:{SERVER_NAME}", "alt_aliases": [alt]}
    assert set_state(server, alice, room_id, "m.room.canonical_alias", content).status == 200
    assert authed(alice, "DELETE", alias_url(server, alt)).status == 200
    state = authed(
        alice, "GET", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/state/m.room.canonical_alias"
    )
    assert state.status == 200, state.body
    assert state.json() == {"alias": f"#canon:{SERVER_NAME}"}


# -- canonical alias validation ----------------------------------------------------------


def test_canonical_alias_must_point_at_the_room(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice, room_alias_name="mine")
    other = create_room(server, alice, room_alias_name="theirs")
    assert other
    ok = set_state(
        server, alice, room_id, "m.room.canonical_alias", {"alias": f"#mine:{SERVER_NAME}"}
    )
    assert ok.status == 200, ok.body
    for content in (
        {"alias": f"#theirs:{SERVER_NAME}"},
        {"alias": f"#nowhere:{SERVER_NAME}"},
        {"alias": f"#mine:{SERVER_NAME}", "alt_aliases": [f"#theirs:{SERVER_NAME}"]},
        # another server's alias cannot be checked until federation lands
        {"alt_aliases": ["#remote:other.example"]},
    ):
        reply = set_state(server, alice, room_id, "m.room.canonical_alias", content)
        assert (reply.status, reply.errcode) == (400, "M_BAD_ALIAS"), content
    for content in (
        {"alias": "not an alias"},
        {"alias": 5},
        {"alt_aliases": "#mine:test.localhost"},
        {"alt_aliases": ["#bad alias:test.localhost"]},
    ):
        reply = set_state(server, alice, room_id, "m.room.canonical_alias", content)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), content
    # clearing it, and alt aliases that point here, are fine
    assert set_state(server, alice, room_id, "m.room.canonical_alias", {}).status == 200
    alt = f"#mine-alt:{SERVER_NAME}"
    assert put_alias(server, alice, alt, room_id).status == 200
    both = {"alias": f"#mine:{SERVER_NAME}", "alt_aliases": [alt]}
    assert set_state(server, alice, room_id, "m.room.canonical_alias", both).status == 200


def test_aliases_already_named_need_not_resolve(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    other = create_room(server, bob, preset="public_chat")
    join(server, bob, room_id)
    name = f"#drifting:{SERVER_NAME}"
    assert put_alias(server, bob, name, room_id).status == 200
    assert (
        set_state(server, alice, room_id, "m.room.canonical_alias", {"alias": name}).status == 200
    )
    # bob moves his alias away; he may not change the canonical alias, so it still names it
    assert authed(bob, "DELETE", alias_url(server, name)).status == 200
    assert put_alias(server, bob, name, other).status == 200
    # the room can still change its other canonical alias fields
    reply = set_state(
        server, alice, room_id, "m.room.canonical_alias", {"alias": name, "alt_aliases": []}
    )
    assert reply.status == 200, reply.body


# -- published room directory ------------------------------------------------------------


def with_query(url: str, query: dict[str, Any]) -> str:
    if not query:
        return url
    return url + "?" + "&".join(f"{key}={quote(str(value))}" for key, value in query.items())


def public_rooms(hs: RunningServer, session: Session | None, **query: Any) -> Reply:
    url = with_query(f"{hs.url}{CLIENT}/publicRooms", query)
    if session is None:
        return request("GET", url)
    return authed(session, "GET", url)


def search_public_rooms(hs: RunningServer, session: Session, body: Any, **query: Any) -> Reply:
    url = with_query(f"{hs.url}{CLIENT}/publicRooms", query)
    return authed(session, "POST", url, body)


def visibility_url(server: RunningServer, room_id: str) -> str:
    return f"{server.url}{CLIENT}/directory/list/room/{quote(room_id)}"


def all_public_room_ids(server: RunningServer, session: Session) -> list[str]:
    reply = search_public_rooms(server, session, {"limit": 1000})
    assert reply.status == 200, reply.body
    return [entry["room_id"] for entry in reply.json()["chunk"]]


def test_published_room_entry(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(
        server,
        alice,
        visibility="public",
        preset="public_chat",
        name="Entry Room",
        topic="All about entries",
        room_alias_name="entry",
        creation_content={"type": "org.example.entry"},
    )
    avatar = set_state(server, alice, room_id, "m.room.avatar", {"url": "mxc://x/avatar"})
    assert avatar.status == 200
    join(server, bob, room_id)
    reply = search_public_rooms(server, alice, {"filter": {"generic_search_term": "Entry Room"}})
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["chunk"] == [
        {
            "room_id": room_id,
            "name": "Entry Room",
            "topic": "All about entries",
            "canonical_alias": f"#entry:{SERVER_NAME}",
            "avatar_url": "mxc://x/avatar",
            "num_joined_members": 2,
            "world_readable": False,
            "guest_can_join": False,
            "join_rule": "public",
            "room_type": "org.example.entry",
        }
    ]
    assert body["total_room_count_estimate"] == 1
    assert "next_batch" not in body and "prev_batch" not in body


def test_visibility_round_trip(
    server: RunningServer, alice: Session, bob: Session, admin: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    assert request("GET", visibility_url(server, room_id)).json() == {"visibility": "private"}
    assert room_id not in all_public_room_ids(server, alice)

    published = authed(alice, "PUT", visibility_url(server, room_id), {"visibility": "public"})
    assert (published.status, published.json()) == (200, {})
    assert request("GET", visibility_url(server, room_id)).json() == {"visibility": "public"}
    assert room_id in all_public_room_ids(server, alice)

    # bob is joined but no moderator; carol-like outsiders likewise
    join(server, bob, room_id)
    refused = authed(bob, "PUT", visibility_url(server, room_id), {"visibility": "private"})
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    # the default visibility of the body is public; admins need not be in the room
    by_admin = authed(admin, "PUT", visibility_url(server, room_id), {"visibility": "private"})
    assert by_admin.status == 200
    assert room_id not in all_public_room_ids(server, alice)
    default = authed(alice, "PUT", visibility_url(server, room_id), {})
    assert default.status == 200
    assert request("GET", visibility_url(server, room_id)).json() == {"visibility": "public"}

    bad = authed(alice, "PUT", visibility_url(server, room_id), {"visibility": "secret"})
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    unknown = f"!unknown:{SERVER_NAME}"
    missing = request("GET", visibility_url(server, unknown))
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    missing = authed(alice, "PUT", visibility_url(server, unknown), {"visibility": "public"})
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    anon = request("PUT", visibility_url(server, room_id), {"visibility": "private"})
    assert (anon.status, anon.errcode) == (401, "M_MISSING_TOKEN")


def test_invite_only_rooms_are_not_listed_unless_world_readable(
    server: RunningServer, alice: Session
) -> None:
    room_id = create_room(server, alice, visibility="public", preset="private_chat")
    assert room_id not in all_public_room_ids(server, alice)
    reply = set_state(
        server,
        alice,
        room_id,
        "m.room.history_visibility",
        {"history_visibility": "world_readable"},
    )
    assert reply.status == 200
    assert room_id in all_public_room_ids(server, alice)


def test_public_rooms_needs_a_token_by_default(server: RunningServer, alice: Session) -> None:
    anon = public_rooms(server, None)
    assert (anon.status, anon.errcode) == (401, "M_MISSING_TOKEN")
    assert public_rooms(server, alice).status == 200
    anon_post = request("POST", f"{server.url}{CLIENT}/publicRooms", {})
    assert (anon_post.status, anon_post.errcode) == (401, "M_MISSING_TOKEN")


def test_public_rooms_pagination(server: RunningServer, alice: Session, bob: Session) -> None:
    marker = "paginated-xyzzy"
    rooms = [
        create_room(server, alice, visibility="public", preset="public_chat", name=f"{marker} {i}")
        for i in range(5)
    ]
    # two rooms with two members sort first
    for room_id in rooms[3:]:
        join(server, bob, room_id)
    expected = sorted(rooms[3:]) + sorted(rooms[:3])
    search = {"filter": {"generic_search_term": marker.upper()}}

    first = search_public_rooms(server, alice, {**search, "limit": 2}).json()
    assert [entry["room_id"] for entry in first["chunk"]] == expected[:2]
    assert first["total_room_count_estimate"] == 5
    assert "prev_batch" not in first
    second = search_public_rooms(
        server, alice, {**search, "limit": 2, "since": first["next_batch"]}
    ).json()
    assert [entry["room_id"] for entry in second["chunk"]] == expected[2:4]
    third = search_public_rooms(
        server, alice, {**search, "limit": 2, "since": second["next_batch"]}
    ).json()
    assert [entry["room_id"] for entry in third["chunk"]] == expected[4:]
    assert "next_batch" not in third
    back = search_public_rooms(
        server, alice, {**search, "limit": 2, "since": third["prev_batch"]}
    ).json()
    assert [entry["room_id"] for entry in back["chunk"]] == expected[2:4]
    assert back["next_batch"] and back["prev_batch"]

    # GET pages the same way over the whole directory
    everything = public_rooms(server, alice, limit=1000).json()["chunk"]
    ours = [entry["room_id"] for entry in everything if entry["room_id"] in rooms]
    assert ours == expected
    page = public_rooms(server, alice, limit=1).json()
    assert len(page["chunk"]) == 1 and "next_batch" in page
    following = public_rooms(server, alice, limit=1, since=page["next_batch"]).json()
    assert following["chunk"][0]["room_id"] != page["chunk"][0]["room_id"]


def test_public_rooms_filters(server: RunningServer, alice: Session) -> None:
    space = create_room(
        server,
        alice,
        visibility="public",
        preset="public_chat",
        name="filters space",
        creation_content={"type": "m.space"},
    )
    plain = create_room(
        server, alice, visibility="public", preset="public_chat", topic="filters plain"
    )

    def found(room_types: Any) -> set[str]:
        body = {"filter": {"generic_search_term": "filters", "room_types": room_types}}
        reply = search_public_rooms(server, alice, body)
        assert reply.status == 200, reply.body
        return {entry["room_id"] for entry in reply.json()["chunk"]}

    assert found(None) == {space, plain}
    assert found([]) == {space, plain}
    assert found(["m.space"]) == {space}
    assert found([None]) == {plain}
    assert found([None, "m.space"]) == {space, plain}
    # a specific third-party network lists nothing: no bridges are configured
    reply = search_public_rooms(server, alice, {"third_party_instance_id": "irc"})
    assert reply.json()["chunk"] == []
    reply = search_public_rooms(server, alice, {"include_all_networks": True})
    assert space in {entry["room_id"] for entry in reply.json()["chunk"]}
    # our own server name is the local directory
    reply = search_public_rooms(server, alice, {"limit": 1000}, server=SERVER_NAME)
    assert space in {entry["room_id"] for entry in reply.json()["chunk"]}


def test_public_rooms_refusals(server: RunningServer, alice: Session) -> None:
    for reply in (
        public_rooms(server, alice, since="garbage"),
        search_public_rooms(server, alice, {"since": "n!!!"}),
    ):
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    for reply in (
        public_rooms(server, alice, limit="many"),
        public_rooms(server, alice, limit=-1),
    ):
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    for body in ({"limit": -1}, {"limit": "ten"}, {"filter": {"room_types": "m.space"}}):
        reply = search_public_rooms(server, alice, body)
        assert (reply.status, reply.errcode) == (400, "M_BAD_JSON"), body
    both = search_public_rooms(
        server, alice, {"include_all_networks": True, "third_party_instance_id": "irc"}
    )
    assert (both.status, both.errcode) == (400, "M_INVALID_PARAM")
    # another server's directory, when that server cannot be reached: 502, as Synapse
    remote = public_rooms(server, alice, server="other.invalid")
    assert (remote.status, remote.errcode) == (502, "M_UNKNOWN")
    remote = search_public_rooms(server, alice, {}, server="other.invalid")
    assert (remote.status, remote.errcode) == (502, "M_UNKNOWN")
    not_json = search_public_rooms(server, alice, b"nope")
    assert (not_json.status, not_json.errcode) == (400, "M_NOT_JSON")
