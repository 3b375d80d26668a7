"""Room membership over real HTTP on both engines: a table of transitions per room version,
each allowed or refused with the spec's error, plus aliases, knocking, restricted joins
through a space, forgetting, /joined_rooms and profile changes reaching member events."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed, register

CLIENT = "/_matrix/client/v3"
SERVER_NAME = "test.localhost"
VERSIONS = ["1", "6", "7", "8", "10", "11", "12"]
_names = itertools.count()


@dataclass(frozen=True)
class Cast:
    """alice creates every room; mod gets the moderator level 50; bob and carol are users."""

    alice: Session
    mod: Session
    bob: Session
    carol: Session


@pytest.fixture(scope="module")
def cast(server: RunningServer) -> Cast:
    return Cast(*(register(server.url, name) for name in ("alice", "mod", "bob", "carol")))


def post(server: RunningServer, session: Session, path: str, body: Any = None) -> Reply:
    return authed(session, "POST", server.url + CLIENT + path, {} if body is None else body)


def ok(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    return body


def refused(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def make_room(
    server: RunningServer,
    cast: Cast,
    version: str,
    *,
    join_rule: str = "invite",
    allow: list[dict[str, str]] | None = None,
    levels: dict[str, int] | None = None,
    **extra: Any,
) -> str:
    """A room of `version` with the join rule, mod at level 50 and joined, and `levels`
    overriding the power levels' scalar keys."""
    users = {cast.mod.user_id: 50}
    if version != "12":
        # rooms/v12: creators have infinite power and may not be listed
        users[cast.alice.user_id] = 100
    join_rules: dict[str, Any] = {"join_rule": join_rule}
    if allow is not None:
        join_rules["allow"] = allow
    body: dict[str, Any] = {
        "room_version": version,
        "preset": "private_chat",
        "invite": [cast.mod.user_id],
        "power_level_content_override": {"users": users, **(levels or {})},
        **extra,
    }
    room_id: str = ok(authed(cast.alice, "POST", server.url + CLIENT + "/createRoom", body))[
        "room_id"
    ]
    ok(post(server, cast.mod, f"/rooms/{room_id}/join"))
    # set after mod joins: some rules (knock in v1) would keep even the invited out
    put_state(server, cast.alice, room_id, "m.room.join_rules", join_rules)
    return room_id


def put_state(
    server: RunningServer, session: Session, room_id: str, event_type: str, content: Any
) -> None:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/state/{event_type}"
    ok(authed(session, "PUT", url, content))


def bring_to(
    server: RunningServer, cast: Cast, room_id: str, who: Session, membership: str
) -> None:
    """Put `who` into `membership` in the room with alice's help."""
    if membership == "none":
        return
    if membership == "ban":
        ok(post(server, cast.alice, f"/rooms/{room_id}/ban", {"user_id": who.user_id}))
        return
    if membership == "knock":
        ok(post(server, who, f"/knock/{room_id}"))
        return
    ok(post(server, cast.alice, f"/rooms/{room_id}/invite", {"user_id": who.user_id}))
    if membership in ("join", "leave"):
        ok(post(server, who, f"/rooms/{room_id}/join"))
    if membership == "leave":
        ok(post(server, who, f"/rooms/{room_id}/leave"))


def can_send(server: RunningServer, session: Session, room_id: str) -> bool:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/t{next(_names)}"
    return authed(session, "PUT", url, {"msgtype": "m.text", "body": "hi"}).status == 200


def joined_rooms(server: RunningServer, session: Session) -> list[str]:
    rooms: list[str] = ok(authed(session, "GET", server.url + CLIENT + "/joined_rooms"))[
        "joined_rooms"
    ]
    return rooms


# -- the transition table --------------------------------------------------------------------
#
# (join rule, bob's membership before, actor, action, expected status, expected errcode)
# actor "bob" acts on himself; "carol" is a plain member (level 0) acting on bob; "mod" has
# level 50 (kick/ban/invite levels are the defaults of the private_chat preset: 50/50/0).
OK = (200, None)
FORBIDDEN = (403, "M_FORBIDDEN")
TRANSITIONS: list[tuple[str, str, str, str, tuple[int, str | None]]] = [
    ("public", "none", "bob", "join", OK),
    ("public", "join", "bob", "join", OK),
    ("public", "leave", "bob", "join", OK),
    ("public", "ban", "bob", "join", FORBIDDEN),
    ("invite", "none", "bob", "join", FORBIDDEN),
    ("invite", "invite", "bob", "join", OK),
    ("invite", "leave", "bob", "join", FORBIDDEN),
    ("invite", "none", "carol", "invite", OK),
    ("invite", "invite", "mod", "invite", OK),
    ("invite", "join", "mod", "invite", FORBIDDEN),
    ("invite", "ban", "mod", "invite", FORBIDDEN),
    ("invite", "none", "outsider", "invite", FORBIDDEN),
    ("invite", "join", "bob", "leave", OK),
    ("invite", "invite", "bob", "leave", OK),
    ("invite", "none", "bob", "leave", FORBIDDEN),
    ("invite", "ban", "bob", "leave", FORBIDDEN),
    ("invite", "join", "mod", "kick", OK),
    ("invite", "invite", "mod", "kick", OK),
    ("invite", "join", "carol", "kick", FORBIDDEN),
    ("invite", "none", "mod", "kick", FORBIDDEN),
    ("invite", "leave", "mod", "kick", FORBIDDEN),
    ("invite", "join", "mod", "ban", OK),
    ("invite", "none", "mod", "ban", OK),
    ("invite", "join", "carol", "ban", FORBIDDEN),
    ("invite", "ban", "mod", "unban", OK),
    ("invite", "ban", "carol", "unban", FORBIDDEN),
    ("invite", "join", "mod", "unban", (403, "M_BAD_STATE")),
    ("invite", "none", "mod", "unban", (403, "M_BAD_STATE")),
]


def act(
    server: RunningServer, cast: Cast, room_id: str, actor: str, action: str, reason: str
) -> Reply:
    bob = cast.bob
    if actor == "bob":
        if action == "join":
            return post(server, bob, f"/rooms/{room_id}/join", {"reason": reason})
        return post(server, bob, f"/rooms/{room_id}/{action}", {"reason": reason})
    session = cast.alice if actor == "outsider" else getattr(cast, actor)
    if actor == "outsider":
        # a fresh user who was never in the room
        session = register(server.url, f"outsider{next(_names)}")
    return post(
        server, session, f"/rooms/{room_id}/{action}", {"user_id": bob.user_id, "reason": reason}
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_membership_transitions(server: RunningServer, cast: Cast, version: str) -> None:
    failures = []
    for join_rule, before, actor, action, (status, errcode) in TRANSITIONS:
        room_id = make_room(server, cast, version, join_rule=join_rule)
        if actor == "carol":
            bring_to(server, cast, room_id, cast.carol, "join")
        bring_to(server, cast, room_id, cast.bob, before)
        reply = act(server, cast, room_id, actor, action, "because")
        got = (reply.status, reply.errcode if reply.status != 200 else None)
        if got != (status, errcode):
            failures.append((join_rule, before, actor, action, got, reply.body))
    assert not failures, failures


@pytest.mark.parametrize("version", VERSIONS)
def test_transitions_take_effect(server: RunningServer, cast: Cast, version: str) -> None:
    room_id = make_room(server, cast, version, join_rule="public")
    bob = cast.bob
    ok(post(server, bob, f"/rooms/{room_id}/join"))
    assert can_send(server, bob, room_id)
    assert room_id in joined_rooms(server, bob)
    ok(post(server, cast.mod, f"/rooms/{room_id}/kick", {"user_id": bob.user_id}))
    assert not can_send(server, bob, room_id)
    assert room_id not in joined_rooms(server, bob)
    ok(post(server, cast.mod, f"/rooms/{room_id}/ban", {"user_id": bob.user_id}))
    refused(post(server, bob, f"/rooms/{room_id}/join"), 403, "M_FORBIDDEN")
    ok(post(server, cast.mod, f"/rooms/{room_id}/unban", {"user_id": bob.user_id}))
    ok(post(server, bob, f"/rooms/{room_id}/join"))
    assert can_send(server, bob, room_id)


def test_power_levels_decide_moderation(server: RunningServer, cast: Cast) -> None:
    # invite needs 50 here: a plain member may not invite, the moderator may
    room_id = make_room(server, cast, "10", levels={"invite": 50})
    bring_to(server, cast, room_id, cast.carol, "join")
    body = {"user_id": cast.bob.user_id}
    refused(post(server, cast.carol, f"/rooms/{room_id}/invite", body), 403, "M_FORBIDDEN")
    ok(post(server, cast.mod, f"/rooms/{room_id}/invite", body))
    # nobody may kick someone of their own level
    ok(post(server, cast.bob, f"/rooms/{room_id}/join"))
    refused(
        post(server, cast.mod, f"/rooms/{room_id}/kick", {"user_id": cast.alice.user_id}),
        403,
        "M_FORBIDDEN",
    )


def test_v12_creator_cannot_be_kicked_or_banned(server: RunningServer, cast: Cast) -> None:
    room_id = make_room(server, cast, "12", levels={"users_default": 0})
    for action in ("kick", "ban"):
        reply = post(
            server, cast.mod, f"/rooms/{room_id}/{action}", {"user_id": cast.alice.user_id}
        )
        refused(reply, 403, "M_FORBIDDEN")


# -- knocking ----------------------------------------------------------------------------------

KNOCK_EXPECTED = {"1": FORBIDDEN, "6": FORBIDDEN}


@pytest.mark.parametrize("version", VERSIONS)
def test_knock(server: RunningServer, cast: Cast, version: str) -> None:
    room_id = make_room(server, cast, version, join_rule="knock")
    reply = post(server, cast.bob, f"/knock/{room_id}", {"reason": "let me in"})
    expected = KNOCK_EXPECTED.get(version, OK)
    assert (reply.status, reply.errcode if reply.status != 200 else None) == expected, reply.body
    if expected != OK:
        return
    assert reply.json() == {"room_id": room_id}
    # a knock is not a join; the invite accepts it, and only then may bob join
    assert not can_send(server, cast.bob, room_id)
    refused(post(server, cast.bob, f"/rooms/{room_id}/join"), 403, "M_FORBIDDEN")
    ok(post(server, cast.mod, f"/rooms/{room_id}/invite", {"user_id": cast.bob.user_id}))
    ok(post(server, cast.bob, f"/rooms/{room_id}/join"))
    # members, the banned and the invited cannot knock
    refused(post(server, cast.bob, f"/knock/{room_id}"), 403, "M_FORBIDDEN")


@pytest.mark.parametrize("version", ["7", "10"])
def test_knock_refusals(server: RunningServer, cast: Cast, version: str) -> None:
    invite_only = make_room(server, cast, version, join_rule="invite")
    refused(post(server, cast.bob, f"/knock/{invite_only}"), 403, "M_FORBIDDEN")
    knockable = make_room(server, cast, version, join_rule="knock")
    bring_to(server, cast, knockable, cast.bob, "ban")
    refused(post(server, cast.bob, f"/knock/{knockable}"), 403, "M_FORBIDDEN")
    bring_to(server, cast, knockable, cast.carol, "invite")
    refused(post(server, cast.carol, f"/knock/{knockable}"), 403, "M_FORBIDDEN")
    # a knock can be retracted by leaving, and rejected by a kick
    other = register(server.url, f"knocker{next(_names)}")
    ok(post(server, other, f"/knock/{knockable}"))
    ok(post(server, other, f"/rooms/{knockable}/leave"))
    ok(post(server, other, f"/knock/{knockable}"))
    ok(post(server, cast.mod, f"/rooms/{knockable}/kick", {"user_id": other.user_id}))
    refused(post(server, other, f"/knock/{unknown_room()}"), 404, "M_NOT_FOUND")


def unknown_room() -> str:
    return f"!nosuchroom{next(_names)}:{SERVER_NAME}"


# -- restricted joins ------------------------------------------------------------------------

# (join rule, version) -> (joining from the space, joining from outside, knocking from outside)
RESTRICTED = [
    ("restricted", "7", FORBIDDEN, FORBIDDEN, FORBIDDEN),
    ("restricted", "8", OK, FORBIDDEN, FORBIDDEN),
    ("restricted", "10", OK, FORBIDDEN, FORBIDDEN),
    ("restricted", "12", OK, FORBIDDEN, FORBIDDEN),
    ("knock_restricted", "8", FORBIDDEN, FORBIDDEN, FORBIDDEN),
    ("knock_restricted", "10", OK, FORBIDDEN, OK),
    ("knock_restricted", "11", OK, FORBIDDEN, OK),
]


@pytest.mark.parametrize(("join_rule", "version", "member", "outsider", "knock"), RESTRICTED)
def test_restricted_join_through_space(
    server: RunningServer,
    cast: Cast,
    join_rule: str,
    version: str,
    member: tuple[int, str | None],
    outsider: tuple[int, str | None],
    knock: tuple[int, str | None],
) -> None:
    space = make_room(
        server, cast, version, join_rule="public", creation_content={"type": "m.space"}
    )
    room_id = make_room(
        server,
        cast,
        version,
        join_rule=join_rule,
        allow=[{"type": "m.room_membership", "room_id": space}],
    )
    insider = register(server.url, f"insider{next(_names)}")
    ok(post(server, insider, f"/rooms/{space}/join"))
    stranger = register(server.url, f"stranger{next(_names)}")

    def outcome(reply: Reply) -> tuple[int, str | None]:
        return (reply.status, reply.errcode if reply.status != 200 else None)

    assert outcome(post(server, insider, f"/join/{room_id}")) == member
    assert outcome(post(server, stranger, f"/join/{room_id}")) == outsider
    assert outcome(post(server, stranger, f"/knock/{room_id}")) == knock
    if member == OK:
        assert can_send(server, insider, room_id)
        # the condition is checked only when joining: leaving the space keeps the membership
        ok(post(server, insider, f"/rooms/{space}/leave"))
        assert can_send(server, insider, room_id)


def test_restricted_join_needs_a_local_member_who_may_invite(
    server: RunningServer, cast: Cast
) -> None:
    space = make_room(server, cast, "10", join_rule="public")
    room_id = make_room(
        server,
        cast,
        "10",
        join_rule="restricted",
        allow=[{"type": "m.room_membership", "room_id": space}],
    )
    # only alice could invite; once she has left, nobody here can vouch for a join
    levels = {"users": {cast.alice.user_id: 100, cast.mod.user_id: 50}, "invite": 100}
    put_state(server, cast.alice, room_id, "m.room.power_levels", levels)
    ok(post(server, cast.alice, f"/rooms/{room_id}/leave"))
    insider = register(server.url, f"insider{next(_names)}")
    ok(post(server, insider, f"/join/{space}"))
    refused(post(server, insider, f"/join/{room_id}"), 400, "M_UNABLE_TO_GRANT_JOIN")


# -- joining by alias and the errors of the join endpoints -------------------------------------


def test_join_by_alias(server: RunningServer, cast: Cast) -> None:
    name = f"lobby{next(_names)}"
    room_id = make_room(server, cast, "11", join_rule="public", room_alias_name=name)
    joined = ok(post(server, cast.carol, f"/join/%23{name}:{SERVER_NAME}", {"reason": "hi"}))
    assert joined == {"room_id": room_id}
    assert room_id in joined_rooms(server, cast.carol)
    refused(post(server, cast.carol, f"/join/%23nope{name}:{SERVER_NAME}"), 404, "M_NOT_FOUND")
    # as Synapse: the alias's server cannot be reached
    refused(post(server, cast.carol, f"/join/%23{name}:elsewhere.example"), 502, "M_UNKNOWN")
    refused(post(server, cast.carol, f"/join/{name}"), 400, "M_INVALID_PARAM")


def test_join_unknown_or_remote_rooms(server: RunningServer, cast: Cast) -> None:
    refused(post(server, cast.bob, f"/rooms/{unknown_room()}/join"), 404, "M_NOT_FOUND")
    # as Synapse: no server to join through could be reached
    refused(
        post(server, cast.bob, f"/join/{unknown_room()}?via=elsewhere.example"), 502, "M_UNKNOWN"
    )
    refused(
        post(server, cast.bob, "/join/!abc:elsewhere.example?server_name=elsewhere.example"),
        502,
        "M_UNKNOWN",
    )


def test_join_accepts_an_empty_body(server: RunningServer, cast: Cast) -> None:
    room_id = make_room(server, cast, "10", join_rule="public")
    reply = request("POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", b"", cast.bob.headers)
    assert reply.status == 200, reply.body


def test_bad_requests(server: RunningServer, cast: Cast) -> None:
    room_id = make_room(server, cast, "10")
    url = f"{server.url}{CLIENT}/rooms/{room_id}"
    for action in ("invite", "kick", "ban", "unban"):
        refused(request("POST", f"{url}/{action}", b"{nope", cast.alice.headers), 400, "M_NOT_JSON")
        refused(post(server, cast.alice, f"/rooms/{room_id}/{action}", {}), 400, "M_MISSING_PARAM")
        refused(
            post(server, cast.alice, f"/rooms/{room_id}/{action}", {"user_id": 5}),
            400,
            "M_BAD_JSON",
        )
        refused(
            post(server, cast.alice, f"/rooms/{room_id}/{action}", {"user_id": "bob"}),
            400,
            "M_INVALID_PARAM",
        )
        refused(
            request("POST", f"{url}/{action}", {"user_id": cast.bob.user_id}),
            401,
            "M_MISSING_TOKEN",
        )
    refused(post(server, cast.alice, f"/rooms/{room_id}/join", {"reason": 5}), 400, "M_BAD_JSON")
    refused(request("POST", f"{url}/leave", b"[]", cast.alice.headers), 400, "M_BAD_JSON")
    refused(
        post(
            server,
            cast.alice,
            f"/rooms/{room_id}/invite",
            {"medium": "email", "address": "a@b.c", "id_server": "x"},
        ),
        # the third-party form needs the identity server's access token (tests/notify)
        400,
        "M_MISSING_PARAM",
    )
    refused(request("GET", f"{server.url}{CLIENT}/joined_rooms"), 401, "M_MISSING_TOKEN")


def test_actions_in_unknown_rooms_are_refused(server: RunningServer, cast: Cast) -> None:
    room_id = unknown_room()
    body = {"user_id": cast.carol.user_id}
    for action in ("invite", "kick", "ban"):
        refused(post(server, cast.bob, f"/rooms/{room_id}/{action}", body), 403, "M_FORBIDDEN")
    refused(post(server, cast.bob, f"/rooms/{room_id}/leave"), 403, "M_FORBIDDEN")


def test_invite_of_a_user_of_an_unreachable_server_fails(server: RunningServer, cast: Cast) -> None:
    room_id = make_room(server, cast, "10")
    # the invitee's server must sign the invite first (tests/federation/test_memberships.py)
    body = {"user_id": "@someone:elsewhere.invalid"}
    refused(post(server, cast.alice, f"/rooms/{room_id}/invite", body), 502, "M_UNKNOWN")
    path = f"/rooms/{room_id}/state/m.room.member/@someone:elsewhere.invalid"
    refused(authed(cast.alice, "GET", server.url + CLIENT + path), 404, "M_NOT_FOUND")


# -- forgetting, joined rooms ------------------------------------------------------------------


def test_forget(server: RunningServer, cast: Cast) -> None:
    room_id = make_room(server, cast, "10", join_rule="public")
    ok(post(server, cast.bob, f"/rooms/{room_id}/join"))
    refused(post(server, cast.bob, f"/rooms/{room_id}/forget"), 400, "M_UNKNOWN")
    ok(post(server, cast.bob, f"/rooms/{room_id}/leave"))
    ok(post(server, cast.bob, f"/rooms/{room_id}/forget"))
    # forgetting twice, or a room one was never in, is harmless
    ok(post(server, cast.bob, f"/rooms/{room_id}/forget"))
    ok(post(server, cast.bob, f"/rooms/{unknown_room()}/forget"))
    # an invite must be rejected before the room can be forgotten
    invited = make_room(server, cast, "10")
    bring_to(server, cast, invited, cast.bob, "invite")
    refused(post(server, cast.bob, f"/rooms/{invited}/forget"), 400, "M_UNKNOWN")
    refused(
        request("POST", f"{server.url}{CLIENT}/rooms/{room_id}/forget", {}), 401, "M_MISSING_TOKEN"
    )


def test_joined_rooms(server: RunningServer) -> None:
    dora = register(server.url, f"dora{next(_names)}")
    assert joined_rooms(server, dora) == []
    created = ok(authed(dora, "POST", server.url + CLIENT + "/createRoom", {}))["room_id"]
    second = ok(authed(dora, "POST", server.url + CLIENT + "/createRoom", {}))["room_id"]
    assert sorted(joined_rooms(server, dora)) == sorted([created, second])
    ok(post(server, dora, f"/rooms/{second}/leave"))
    assert joined_rooms(server, dora) == [created]


# -- what member events say ------------------------------------------------------------------


def member_content(server: RunningServer, session: Session, room_id: str, user_id: str) -> Any:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/state/m.room.member/{user_id}"
    return ok(authed(session, "GET", url))


def set_profile(server: RunningServer, session: Session, key: str, value: str) -> None:
    url = f"{server.url}{CLIENT}/profile/{session.user_id}/{key}"
    ok(authed(session, "PUT", url, {key: value}))


def test_member_events_carry_profile_and_reason(server: RunningServer, cast: Cast) -> None:
    erin = register(server.url, f"erin{next(_names)}")
    set_profile(server, erin, "displayname", "Erin")
    set_profile(server, erin, "avatar_url", "mxc://test.localhost/erin")
    room_id = make_room(server, cast, "10")
    reply = post(
        server,
        cast.alice,
        f"/rooms/{room_id}/invite",
        {"user_id": erin.user_id, "reason": "welcome"},
    )
    ok(reply)
    invite = member_content(server, cast.alice, room_id, erin.user_id)
    assert invite == {
        "membership": "invite",
        "reason": "welcome",
        "displayname": "Erin",
        "avatar_url": "mxc://test.localhost/erin",
    }
    ok(post(server, erin, f"/rooms/{room_id}/join", {"reason": "thanks"}))
    assert member_content(server, erin, room_id, erin.user_id) == {
        "membership": "join",
        "reason": "thanks",
        "displayname": "Erin",
        "avatar_url": "mxc://test.localhost/erin",
    }
    ok(post(server, cast.mod, f"/rooms/{room_id}/ban", {"user_id": erin.user_id, "reason": "spam"}))
    assert member_content(server, cast.alice, room_id, erin.user_id) == {
        "membership": "ban",
        "reason": "spam",
    }


def test_profile_changes_reach_joined_rooms(server: RunningServer, cast: Cast) -> None:
    frank = register(server.url, f"frank{next(_names)}")
    joined = [make_room(server, cast, version, join_rule="public") for version in ("1", "12")]
    left = make_room(server, cast, "10", join_rule="public")
    for room_id in [*joined, left]:
        ok(post(server, frank, f"/rooms/{room_id}/join"))
    ok(post(server, frank, f"/rooms/{left}/leave"))

    set_profile(server, frank, "displayname", "Frank the Second")
    set_profile(server, frank, "avatar_url", "mxc://test.localhost/frank")
    for room_id in joined:
        assert member_content(server, frank, room_id, frank.user_id) == {
            "membership": "join",
            "displayname": "Frank the Second",
            "avatar_url": "mxc://test.localhost/frank",
        }
        assert can_send(server, frank, room_id)
    # a room he has left gets no new join
    assert member_content(server, cast.alice, left, frank.user_id)["membership"] == "leave"
    # removing the display name removes it from the member events
    ok(authed(frank, "DELETE", f"{server.url}{CLIENT}/profile/{frank.user_id}/displayname"))
    assert member_content(server, frank, joined[0], frank.user_id) == {
        "membership": "join",
        "avatar_url": "mxc://test.localhost/frank",
    }


def test_restricted_join_names_the_authorising_user(server: RunningServer, cast: Cast) -> None:
    space = make_room(server, cast, "10", join_rule="public")
    room_id = make_room(
        server,
        cast,
        "10",
        join_rule="restricted",
        allow=[{"type": "m.room_membership", "room_id": space}],
    )
    insider = register(server.url, f"insider{next(_names)}")
    ok(post(server, insider, f"/rooms/{space}/join"))
    ok(post(server, insider, f"/rooms/{room_id}/join"))
    content = member_content(server, insider, room_id, insider.user_id)
    # the highest-powered local member who may invite: the creator
    assert content["join_authorised_via_users_server"] == cast.alice.user_id
    # an invited user needs nobody to vouch for them
    bring_to(server, cast, room_id, cast.carol, "invite")
    ok(post(server, cast.carol, f"/rooms/{room_id}/join"))
    assert "join_authorised_via_users_server" not in member_content(
        server, cast.carol, room_id, cast.carol.user_id
    )
