"""The published room directory between servers (spec server-server-api "Public Room
Directory"; SyTest 30rooms/70publicroomslist.pl "Can get remote public room list",
50federation/37public-rooms.pl and 40publicroomlist.pl).

A (`first`, SQLite) keeps `allow_public_rooms_over_federation` at its default, off; B
(`second`, PostgreSQL) turns it on. A's users read B's directory with `?server=`; B's
users are refused A's, as another server's signed requests are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from ranvier.config.signing_key import load_signing_key
from ranvier.protocol.request_auth import authorization_header
from tests.federation.conftest import ServerPair
from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    launch_federating_server,
    register,
)
from tests.federation.replies import ok, refused
from tests.federation.test_queries_and_make_join import create_room, signed_get
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

FEDERATION_PUBLIC_ROOMS = "/_matrix/federation/v1/publicRooms"


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
    postgres_section: dict[str, Any],
) -> Iterator[ServerPair]:
    first = launch_federating_server(tmp_path_factory.mktemp("hs1"), sqlite_section, test_ca)
    try:
        second = launch_federating_server(
            tmp_path_factory.mktemp("hs2"),
            postgres_section,
            test_ca,
            allow_public_rooms_over_federation=True,
        )
        try:
            first.wait_until_serving()
            second.wait_until_serving()
            yield ServerPair(first, second)
        finally:
            assert second.stop() == 0, second.log()
    finally:
        assert first.stop() == 0, first.log()


@pytest.fixture(scope="module")
def users(two_servers: ServerPair) -> tuple[Session, Session]:
    return register(two_servers.first, "alice"), register(two_servers.second, "bob")


@pytest.fixture(scope="module")
def b_rooms(two_servers: ServerPair, users: tuple[Session, Session]) -> list[str]:
    """Two rooms bob publishes on B: "Lobby" with a topic and alias, and "Garden"."""
    b = two_servers.second
    _, bob = users
    lobby = create_room(
        b,
        bob,
        preset="public_chat",
        visibility="public",
        name="Lobby",
        topic="Where everyone meets",
        room_alias_name="lobby",
    )
    garden = create_room(b, bob, preset="public_chat", visibility="public", name="Garden")
    return [lobby, garden]


def public_rooms(
    server: FederatingServer, session: Session, of: str, body: dict[str, Any] | None = None
) -> Reply:
    path = f"{CLIENT}/publicRooms?server={quote(of)}"
    if body is None:
        return server.authed(session, "GET", path)
    return server.authed(session, "POST", path, body)


def room_ids(page: dict[str, Any]) -> list[str]:
    return [room["room_id"] for room in page["chunk"]]


def signed_post(
    origin: FederatingServer, destination: FederatingServer, uri: str, body: dict[str, Any]
) -> Reply:
    """POST `body` to `uri` on `destination`, signed as `origin` with origin's own key."""
    raw = yaml.safe_load(Path(origin.config_path).read_text())
    key_path = Path(raw["signing_key_path"])
    if not key_path.is_absolute():
        key_path = Path(origin.config_path).parent / key_path
    header = authorization_header(
        load_signing_key(str(key_path)),
        method="POST",
        uri=uri,
        origin=origin.server_name,
        destination=destination.server_name,
        content=body,
    )
    return destination.request("POST", uri, body, headers={"Authorization": header})


def test_a_user_lists_the_public_rooms_of_another_server(
    two_servers: ServerPair, users: tuple[Session, Session], b_rooms: list[str]
) -> None:
    a, b = two_servers
    alice, _ = users
    lobby, garden = b_rooms
    page = ok(public_rooms(a, alice, b.server_name))
    assert sorted(room_ids(page)) == sorted([lobby, garden])
    entry = next(room for room in page["chunk"] if room["room_id"] == lobby)
    assert entry["name"] == "Lobby"
    assert entry["topic"] == "Where everyone meets"
    assert entry["canonical_alias"] == f"#lobby:{b.server_name}"
    assert entry["num_joined_members"] == 1
    assert entry["world_readable"] is False
    assert entry["guest_can_join"] is False
    assert entry["join_rule"] == "public"
    assert page["total_room_count_estimate"] == 2
    # the search filter goes to B in a POST
    found = ok(public_rooms(a, alice, b.server_name, {"filter": {"generic_search_term": "lob"}}))
    assert room_ids(found) == [lobby]
    none = ok(public_rooms(a, alice, b.server_name, {"filter": {"generic_search_term": "zzz"}}))
    assert room_ids(none) == []
    # A does not list B's rooms as its own
    assert room_ids(ok(a.authed(alice, "GET", CLIENT + "/publicRooms"))) == []


def test_pages_of_a_remote_directory(
    two_servers: ServerPair, users: tuple[Session, Session], b_rooms: list[str]
) -> None:
    a, b = two_servers
    alice, _ = users
    first = ok(a.authed(alice, "GET", f"{CLIENT}/publicRooms?server={b.server_name}&limit=1"))
    assert len(first["chunk"]) == 1 and "next_batch" in first
    since = quote(first["next_batch"])
    second = ok(
        a.authed(alice, "GET", f"{CLIENT}/publicRooms?server={b.server_name}&limit=1&since={since}")
    )
    assert sorted(room_ids(first) + room_ids(second)) == sorted(b_rooms)
    posted = ok(public_rooms(a, alice, b.server_name, {"limit": 1, "since": first["next_batch"]}))
    assert room_ids(posted) == room_ids(second)


def test_third_party_networks_pass_through(
    two_servers: ServerPair, users: tuple[Session, Session], b_rooms: list[str]
) -> None:
    a, b = two_servers
    alice, _ = users
    # B bridges no network: a network's list is empty there
    body = {"third_party_instance_id": "irc|libera"}
    assert room_ids(ok(public_rooms(a, alice, b.server_name, body))) == []
    everything = ok(public_rooms(a, alice, b.server_name, {"include_all_networks": True}))
    assert sorted(room_ids(everything)) == sorted(b_rooms)
    # B's own refusal of the pair reaches A's user
    both = {"include_all_networks": True, "third_party_instance_id": "irc|libera"}
    refused(public_rooms(a, alice, b.server_name, both), 400, "M_INVALID_PARAM")


def test_a_server_keeps_its_directory_to_itself_by_default(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    create_room(a, alice, preset="public_chat", visibility="public", name="Hidden from B")
    refused(public_rooms(b, bob, a.server_name), 403, "M_FORBIDDEN")
    refused(public_rooms(b, bob, a.server_name, {"filter": {}}), 403, "M_FORBIDDEN")
    refused(signed_get(b, a, FEDERATION_PUBLIC_ROOMS), 403, "M_FORBIDDEN")
    # refused before the body is read
    refused(signed_post(b, a, FEDERATION_PUBLIC_ROOMS, {"limit": "x"}), 403, "M_FORBIDDEN")
    # A's own users see the room
    names = [
        room.get("name") for room in ok(a.authed(alice, "GET", CLIENT + "/publicRooms"))["chunk"]
    ]
    assert names == ["Hidden from B"]


def test_signed_requests_to_a_server_that_shares(
    two_servers: ServerPair, b_rooms: list[str]
) -> None:
    a, b = two_servers
    _, garden = b_rooms
    assert sorted(room_ids(ok(signed_get(a, b, FEDERATION_PUBLIC_ROOMS)))) == sorted(b_rooms)
    limited = ok(signed_get(a, b, FEDERATION_PUBLIC_ROOMS + "?limit=1&include_all_networks=false"))
    assert len(limited["chunk"]) == 1
    found = ok(
        signed_post(a, b, FEDERATION_PUBLIC_ROOMS, {"filter": {"generic_search_term": "Garden"}})
    )
    assert room_ids(found) == [garden]
    refused(signed_get(a, b, FEDERATION_PUBLIC_ROOMS + "?limit=many"), 400, "M_INVALID_PARAM")
    refused(
        signed_get(a, b, FEDERATION_PUBLIC_ROOMS + "?include_all_networks=maybe"),
        400,
        "M_INVALID_PARAM",
    )
    refused(signed_post(a, b, FEDERATION_PUBLIC_ROOMS, {"limit": "x"}), 400, "M_BAD_JSON")
    # unsigned: no server to answer
    refused(b.request("GET", FEDERATION_PUBLIC_ROOMS), 401, "M_UNAUTHORIZED")


def test_a_server_that_cannot_be_reached(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, _ = two_servers
    alice, _ = users
    # nothing listens on port 9: Synapse answers 502
    refused(public_rooms(a, alice, "localhost:9"), 502, "M_UNKNOWN")
    refused(public_rooms(a, alice, "localhost:9", {"filter": {}}), 502, "M_UNKNOWN")
