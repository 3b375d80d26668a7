"""The room directory's switches, each away from its default, over real HTTP on both
engines: allow_public_rooms_without_auth, enable_room_list_search and
require_membership_for_aliases."""

from __future__ import annotations

from urllib.parse import quote

from tests.integration.client import request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed

CLIENT = "/_matrix/client/v3"


server = module_server(
    allow_public_rooms_without_auth=True,
    enable_room_list_search=False,
    require_membership_for_aliases=False,
    **REGISTRATION_CONFIG,
)


def test_directory_is_readable_without_a_token_but_lists_nothing(
    server: RunningServer, alice: Session
) -> None:
    created = authed(
        alice,
        "POST",
        server.url + CLIENT + "/createRoom",
        {"visibility": "public", "preset": "public_chat"},
    )
    assert created.status == 200, created.body
    anonymous = request("GET", server.url + CLIENT + "/publicRooms")
    assert anonymous.status == 200, anonymous.body
    assert anonymous.json() == {"chunk": [], "total_room_count_estimate": 0}
    searched = authed(alice, "POST", server.url + CLIENT + "/publicRooms", {})
    assert searched.json()["chunk"] == []
    # with no token needed, a bad one is ignored (as in Synapse)
    bad_token = request(
        "GET", server.url + CLIENT + "/publicRooms", headers={"Authorization": "Bearer nope"}
    )
    assert bad_token.status == 200

    # publishing is refused while the directory is off; unpublishing is not
    room_id = created.json()["room_id"]
    url = f"{server.url}{CLIENT}/directory/list/room/{quote(room_id)}"
    refused = authed(alice, "PUT", url, {"visibility": "public"})
    assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    assert authed(alice, "PUT", url, {"visibility": "private"}).status == 200
    assert request("GET", url).json() == {"visibility": "private"}


def test_aliases_without_membership(server: RunningServer, alice: Session, bob: Session) -> None:
    created = authed(alice, "POST", server.url + CLIENT + "/createRoom", {})
    room_id = created.json()["room_id"]
    url = f"{server.url}{CLIENT}/directory/room/{quote('#bobs:test.localhost')}"
    reply = authed(bob, "PUT", url, {"room_id": room_id})
    assert reply.status == 200, reply.body
    assert request("GET", url).json()["room_id"] == room_id
    # the room must exist
    unknown = authed(
        bob,
        "PUT",
        f"{server.url}{CLIENT}/directory/room/{quote('#nowhere:test.localhost')}",
        {"room_id": "!nowhere:test.localhost"},
    )
    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
