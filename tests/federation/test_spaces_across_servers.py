"""Spaces across servers (spec client-server-api "Spaces", server-server-api "Spaces"), and
room summaries (room_summary.yaml).

A (`first`, SQLite) and B (`second`, PostgreSQL). alice on A makes a space S whose children
are, in the order the spec gives them: B1 (on B, `order` "a", suggested, itself a space with
a child A3 on A), A1 (on A, `order` "b"), then by the time their child events were sent
P (carol's private room on A) and Q (bob's private room on B); and a child event without
`via`, which is no child. A walks B1 through B's /hierarchy; once bob joins S, B walks A1
and A3 through A's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import ok, refused
from tests.federation.test_queries_and_make_join import create_room, signed_get
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

CLIENT_V1 = "/_matrix/client/v1"
SPACE = {"type": "m.space"}


@dataclass(frozen=True)
class Spaces:
    alice: Session
    bob: Session
    carol: Session
    space: str
    b1: str
    a1: str
    a3: str
    private_a: str
    private_b: str


def add_child(
    server: FederatingServer, session: Session, space: str, child: str, content: dict[str, Any]
) -> None:
    path = f"{CLIENT}/rooms/{quote(space)}/state/m.space.child/{quote(child)}"
    ok(server.authed(session, "PUT", path, content))


def hierarchy(server: FederatingServer, session: Session, room_id: str, query: str = "") -> Reply:
    path = f"{CLIENT_V1}/rooms/{quote(room_id)}/hierarchy" + (f"?{query}" if query else "")
    return server.authed(session, "GET", path)


def walked(server: FederatingServer, session: Session, room_id: str, query: str = "") -> list[str]:
    return [room["room_id"] for room in ok(hierarchy(server, session, room_id, query))["rooms"]]


@pytest.fixture(scope="module")
def spaces(two_servers: ServerPair) -> Spaces:
    a, b = two_servers
    alice, carol = register(a, "alice"), register(a, "carol")
    bob = register(b, "bob")
    space = create_room(a, alice, preset="public_chat", name="Space", creation_content=SPACE)
    b1 = create_room(
        b,
        bob,
        preset="public_chat",
        name="B one",
        topic="On B",
        creation_content=SPACE,
        room_alias_name="bone",
    )
    a1 = create_room(a, alice, preset="public_chat", name="A one")
    a3 = create_room(a, alice, preset="public_chat", name="A three")
    private_a = create_room(a, carol, preset="private_chat", name="Carol's")
    private_b = create_room(b, bob, preset="private_chat", name="Bob's")
    add_child(b, bob, b1, a3, {"via": [a.server_name]})
    add_child(a, alice, space, a1, {"via": [a.server_name], "order": "b"})
    add_child(a, alice, space, b1, {"via": [b.server_name], "order": "a", "suggested": True})
    add_child(a, alice, space, private_a, {"via": [a.server_name]})
    add_child(a, alice, space, private_b, {"via": [b.server_name]})
    add_child(a, alice, space, "!novia:" + a.server_name, {"suggested": True})
    return Spaces(alice, bob, carol, space, b1, a1, a3, private_a, private_b)


def test_a_space_walks_across_to_the_other_server(two_servers: ServerPair, spaces: Spaces) -> None:
    a, b = two_servers
    s = spaces
    # depth first, children in the spec's order; the private rooms are left out
    assert walked(a, s.alice, s.space) == [s.space, s.b1, s.a3, s.a1]
    page = ok(hierarchy(a, s.alice, s.space))
    assert "next_batch" not in page
    root, b1 = page["rooms"][0], page["rooms"][1]
    assert [child["state_key"] for child in root["children_state"]] == [
        s.b1,
        s.a1,
        s.private_a,
        s.private_b,
    ]
    child = root["children_state"][0]
    assert child["type"] == "m.space.child"
    assert child["sender"] == s.alice.user_id
    assert child["content"] == {"via": [b.server_name], "order": "a", "suggested": True}
    assert isinstance(child["origin_server_ts"], int)
    assert root["room_type"] == "m.space"
    assert root["name"] == "Space"
    assert root["num_joined_members"] == 1
    assert root["join_rule"] == "public"
    assert root["room_version"] and root["world_readable"] is False
    # B1, summarised by B
    assert b1["name"] == "B one"
    assert b1["topic"] == "On B"
    assert b1["canonical_alias"] == f"#bone:{b.server_name}"
    assert b1["room_type"] == "m.space"
    assert b1["num_joined_members"] == 1
    assert [c["state_key"] for c in b1["children_state"]] == [s.a3]
    # a room that is not a space has no children
    assert page["rooms"][3]["children_state"] == []


def test_depth_suggestions_and_pages(two_servers: ServerPair, spaces: Spaces) -> None:
    a, _ = two_servers
    s = spaces
    assert walked(a, s.alice, s.space, "max_depth=0") == [s.space]
    assert walked(a, s.alice, s.space, "max_depth=1") == [s.space, s.b1, s.a1]
    assert walked(a, s.alice, s.space, "suggested_only=true") == [s.space, s.b1]
    # one room a page, the same walk
    pages: list[str] = []
    page = ok(hierarchy(a, s.alice, s.space, "limit=1"))
    first_token = page["next_batch"]
    while True:
        assert len(page["rooms"]) <= 1
        pages += [room["room_id"] for room in page["rooms"]]
        if "next_batch" not in page:
            break
        page = ok(hierarchy(a, s.alice, s.space, f"limit=1&from={quote(page['next_batch'])}"))
    assert pages == [s.space, s.b1, s.a3, s.a1]
    # a token is for the parameters it was made with, the room and the user
    token = quote(first_token)
    assert walked(a, s.alice, s.space, f"limit=1&from={token}") == [s.b1]
    for query in (f"from={token}&suggested_only=true", f"from={token}&max_depth=1"):
        refused(hierarchy(a, s.alice, s.space, query), 400, "M_INVALID_PARAM")
    refused(hierarchy(a, s.alice, s.a1, f"from={token}"), 400, "M_INVALID_PARAM")
    refused(hierarchy(a, s.carol, s.space, f"from={token}"), 400, "M_INVALID_PARAM")
    refused(hierarchy(a, s.alice, s.space, "from=nonsense"), 400, "M_INVALID_PARAM")
    for query in ("limit=0", "limit=x", "max_depth=-1", "suggested_only=yes"):
        refused(hierarchy(a, s.alice, s.space, query), 400, "M_INVALID_PARAM")


def test_rooms_a_user_may_not_see(two_servers: ServerPair, spaces: Spaces) -> None:
    a, _ = two_servers
    s = spaces
    # carol sees her own room in the space
    assert walked(a, s.carol, s.space) == [s.space, s.b1, s.a3, s.a1, s.private_a]
    refused(hierarchy(a, s.alice, s.private_a), 403, "M_FORBIDDEN")
    refused(hierarchy(a, s.alice, "!unknown:" + a.server_name), 403, "M_FORBIDDEN")
    refused(
        a.request("GET", f"{CLIENT_V1}/rooms/{quote(s.space)}/hierarchy"), 401, "M_MISSING_TOKEN"
    )


def test_the_other_server_walks_the_space_once_joined(
    two_servers: ServerPair, spaces: Spaces
) -> None:
    a, b = two_servers
    s = spaces
    path = f"{CLIENT}/join/{quote(s.space)}?server_name={quote(a.server_name)}"
    ok(b.authed(s.bob, "POST", path, {}))
    # B is in the space and B1; A1 and A3 are A's, and bob sees his private room
    assert walked(b, s.bob, s.space) == [s.space, s.b1, s.a3, s.a1, s.private_b]
    rooms = ok(hierarchy(b, s.bob, s.space))["rooms"]
    a1 = next(room for room in rooms if room["room_id"] == s.a1)
    assert a1["name"] == "A one"
    assert a1["num_joined_members"] == 1
    assert rooms[0]["num_joined_members"] == 2


def test_the_federation_endpoint(two_servers: ServerPair, spaces: Spaces) -> None:
    a, b = two_servers
    s = spaces
    answer = ok(signed_get(b, a, f"/_matrix/federation/v1/hierarchy/{quote(s.space)}"))
    assert answer["room"]["room_id"] == s.space
    assert [c["state_key"] for c in answer["room"]["children_state"]][:2] == [s.b1, s.a1]
    # A tells of its own rooms only; B may not see carol's
    assert [child["room_id"] for child in answer["children"]] == [s.a1]
    assert answer["inaccessible_children"] == [s.private_a]
    suggested = ok(
        signed_get(b, a, f"/_matrix/federation/v1/hierarchy/{quote(s.space)}?suggested_only=true")
    )
    assert [c["state_key"] for c in suggested["room"]["children_state"]] == [s.b1]
    assert suggested["children"] == [] and suggested["inaccessible_children"] == []
    refused(
        signed_get(b, a, f"/_matrix/federation/v1/hierarchy/{quote(s.private_a)}"),
        404,
        "M_NOT_FOUND",
    )
    refused(
        signed_get(b, a, "/_matrix/federation/v1/hierarchy/" + quote("!nope:" + a.server_name)),
        404,
        "M_NOT_FOUND",
    )
    # a space whose ACL shuts B out
    walled = create_room(
        a,
        s.alice,
        preset="public_chat",
        creation_content=SPACE,
        initial_state=[
            {
                "type": "m.room.server_acl",
                "state_key": "",
                "content": {"allow": ["*"], "deny": [b.server_name.split(":")[0]]},
            }
        ],
    )
    refused(
        signed_get(b, a, f"/_matrix/federation/v1/hierarchy/{quote(walled)}"), 403, "M_FORBIDDEN"
    )
    refused(
        a.request("GET", f"/_matrix/federation/v1/hierarchy/{quote(s.space)}"),
        401,
        "M_UNAUTHORIZED",
    )


def test_room_summaries(two_servers: ServerPair, spaces: Spaces) -> None:
    a, b = two_servers
    s = spaces
    summary = ok(a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(s.a1)}"))
    assert summary["room_id"] == s.a1
    assert summary["name"] == "A one"
    assert summary["membership"] == "join"
    assert summary["join_rule"] == "public"
    assert summary["num_joined_members"] == 1
    assert "children_state" not in summary
    # without a token: public rooms only, and no membership
    anonymous = ok(a.request("GET", f"{CLIENT_V1}/room_summary/{quote(s.a1)}"))
    assert "membership" not in anonymous and anonymous["name"] == "A one"
    refused(a.request("GET", f"{CLIENT_V1}/room_summary/{quote(s.private_a)}"), 404, "M_NOT_FOUND")
    refused(
        a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(s.private_a)}"),
        404,
        "M_NOT_FOUND",
    )
    assert (
        ok(a.authed(s.carol, "GET", f"{CLIENT_V1}/room_summary/{quote(s.private_a)}"))["membership"]
        == "join"
    )
    # another server's room, by alias: asked of B
    alias = quote(f"#bone:{b.server_name}")
    remote = ok(a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{alias}"))
    assert remote["room_id"] == s.b1
    assert remote["name"] == "B one"
    assert remote["room_type"] == "m.space"
    assert remote["membership"] == "leave"
    # by ID, with the server to ask; without one, nobody knows it
    via = f"?via={quote(b.server_name)}"
    unstable = f"/_matrix/client/unstable/im.nheko.summary/summary/{quote(s.b1)}{via}"
    assert ok(a.authed(s.alice, "GET", unstable))["name"] == "B one"
    refused(a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(s.b1)}"), 404, "M_NOT_FOUND")
    refused(
        a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(s.private_b)}{via}"),
        404,
        "M_NOT_FOUND",
    )
    refused(a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/nonsense"), 400, "M_INVALID_PARAM")


def test_restricted_rooms_for_the_members_of_the_space(
    two_servers: ServerPair, spaces: Spaces
) -> None:
    a, b = two_servers
    s = spaces
    dave = register(a, "dave")
    space = create_room(a, s.carol, preset="public_chat", creation_content=SPACE)
    members_only = create_room(
        a,
        s.carol,
        preset="private_chat",
        name="Members only",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    add_child(a, s.carol, space, members_only, {"via": [a.server_name]})
    # dave could not join it: not shown until he is in the space
    assert walked(a, dave, space) == [space]
    ok(a.authed(dave, "POST", f"{CLIENT}/join/{quote(space)}", {}))
    rooms = ok(hierarchy(a, dave, space))["rooms"]
    assert [room["room_id"] for room in rooms] == [space, members_only]
    assert rooms[1]["join_rule"] == "restricted"
    assert rooms[1]["allowed_room_ids"] == [space]
    # another server sees it once one of its users is in the space
    uri = f"/_matrix/federation/v1/hierarchy/{quote(space)}"
    answer = ok(signed_get(b, a, uri))
    assert answer["children"] == [] and answer["inaccessible_children"] == [members_only]
    ok(b.authed(s.bob, "POST", f"{CLIENT}/join/{quote(space)}?server_name={a.server_name}", {}))
    answer = ok(signed_get(b, a, uri))
    assert [child["room_id"] for child in answer["children"]] == [members_only]
    assert answer["children"][0]["allowed_room_ids"] == [space]
    # and bob, in the space, is shown it by B
    assert walked(b, s.bob, space) == [space, members_only]


def fake_summary(room_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "room_id": room_id,
        "num_joined_members": 3,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
        "children_state": [],
        **fields,
    }


def test_what_other_servers_answer_is_checked(
    two_servers: ServerPair, spaces: Spaces, test_ca: FederationCA, tmp_path: Path
) -> None:
    """A server's answers about its rooms: garbage, errors, another room, a room we may not
    see, and summaries of rooms that are not its room's children are all left out."""
    a, _ = two_servers
    s = spaces
    with FakeServer.running(test_ca, tmp_path / "fake") as fake:
        name = fake.server_name
        good, grandchild, other = f"!good:{name}", f"!grand:{name}", f"!other:{name}"
        garbage, failing, wrong, private = (
            f"!{x}:{name}" for x in ("junk", "fail", "wrong", "priv")
        )
        grand_event = {
            "type": "m.space.child",
            "state_key": grandchild,
            "content": {"via": [name]},
            "sender": f"@f:{name}",
            "origin_server_ts": 1,
        }
        answers: dict[str, tuple[int, Any]] = {
            good: (
                200,
                {
                    "room": fake_summary(good, room_type="m.space", children_state=[grand_event]),
                    "children": [
                        fake_summary(grandchild, name="Grandchild"),
                        # not a child of `good`: not taken for the truth about `other`
                        fake_summary(other, name="A lie"),
                    ],
                    # nor to hide it
                    "inaccessible_children": [other],
                },
            ),
            other: (200, {"room": fake_summary(other, name="The truth"), "children": []}),
            garbage: (200, "nonsense"),
            failing: (500, {"errcode": "M_UNKNOWN", "error": "broken"}),
            wrong: (200, {"room": fake_summary(other), "children": []}),
            private: (200, {"room": fake_summary(private, join_rule="invite"), "children": []}),
        }

        def hierarchy_answer(received: ReceivedRequest) -> tuple[int, Any]:
            room_id = unquote(received.path).rpartition("/")[2]
            return answers.get(room_id, (404, {"errcode": "M_NOT_FOUND", "error": "unknown"}))

        fake.route("GET", "/_matrix/federation/v1/hierarchy/", hierarchy_answer)
        space = create_room(a, s.alice, preset="public_chat", creation_content=SPACE)
        # a room's summary from a server that sends garbage is not found, nor its directory
        refused(
            a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(garbage)}?via={name}"),
            404,
            "M_NOT_FOUND",
        )
        not_a_page = ["not", "a", "list"]
        fake.route("GET", "/_matrix/federation/v1/publicRooms", lambda _: (200, not_a_page))
        refused(a.authed(s.alice, "GET", f"{CLIENT}/publicRooms?server={name}"), 502, "M_UNKNOWN")
        # the failing room last: its 500 starts A's backoff from the fake
        for order, child in enumerate((good, other, garbage, wrong, private, failing)):
            add_child(a, s.alice, space, child, {"via": [name], "order": str(order)})
        rooms = ok(hierarchy(a, s.alice, space))["rooms"]
        assert [room["room_id"] for room in rooms] == [space, good, grandchild, other]
        assert rooms[2]["name"] == "Grandchild"
        assert rooms[3]["name"] == "The truth"
        # every room was asked about: each was left out for its answer
        asked = {unquote(r.path).rpartition("/")[2] for r in fake.received if "hierarchy" in r.path}
        assert asked == {good, other, garbage, wrong, private, failing}


def test_a_summary_shows_avatar_encryption_and_version(
    two_servers: ServerPair, spaces: Spaces
) -> None:
    a, b = two_servers
    s = spaces
    room = create_room(
        a,
        s.alice,
        preset="public_chat",
        room_version="11",
        room_alias_name="shown",
        initial_state=[
            {"type": "m.room.avatar", "state_key": "", "content": {"url": "mxc://a/pic"}},
            {
                "type": "m.room.encryption",
                "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
            },
            {
                "type": "m.room.guest_access",
                "state_key": "",
                "content": {"guest_access": "can_join"},
            },
        ],
    )
    expected = {
        "room_id": room,
        "avatar_url": "mxc://a/pic",
        "encryption": "m.megolm.v1.aes-sha2",
        "room_version": "11",
        "canonical_alias": f"#shown:{a.server_name}",
        "guest_can_join": True,
        "world_readable": False,
        "join_rule": "public",
        "num_joined_members": 1,
    }
    here = ok(a.authed(s.alice, "GET", f"{CLIENT_V1}/room_summary/{quote(room)}"))
    assert here == {**expected, "membership": "join"}
    # the same, as B has it from A
    via = quote(a.server_name)
    there = ok(b.authed(s.bob, "GET", f"{CLIENT_V1}/room_summary/{quote(room)}?via={via}"))
    assert there == {**expected, "membership": "leave"}
