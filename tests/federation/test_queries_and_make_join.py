"""Profile and directory queries, make_join and server ACLs between servers over TLS.

Two Ranvier servers, A (`first`, SQLite) and B (`second`, PostgreSQL): A's users read B's
profiles and aliases through A's client API (A asks B with signed /query requests). Signed
requests "from A" are also made here in the test process with A's own signing key, so that
what B answers to A's make_join can be checked field by field. Then the same queries in
both directions with a real Synapse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml

from ranvier.config.signing_key import load_signing_key
from ranvier.protocol.request_auth import authorization_header
from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok, refused
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session

FEDERATION = "/_matrix/federation/v1"


def signed_get(origin: FederatingServer, destination: FederatingServer, uri: str) -> Reply:
    """GET `uri` on `destination`, signed as `origin` with origin's own key."""
    raw = yaml.safe_load(Path(origin.config_path).read_text())
    key_path = Path(raw["signing_key_path"])
    if not key_path.is_absolute():
        key_path = Path(origin.config_path).parent / key_path
    key = load_signing_key(str(key_path))
    header = authorization_header(
        key,
        method="GET",
        uri=uri,
        origin=origin.server_name,
        destination=destination.server_name,
    )
    return destination.request("GET", uri, headers={"Authorization": header})


def create_room(server: FederatingServer | SynapsePeer, session: Session, **body: Any) -> str:
    room_id: str = ok(server.authed(session, "POST", CLIENT + "/createRoom", body))["room_id"]
    return room_id


def set_profile(server: FederatingServer | SynapsePeer, session: Session, **fields: str) -> None:
    for key, value in fields.items():
        path = f"{CLIENT}/profile/{quote(session.user_id)}/{key}"
        ok(server.authed(session, "PUT", path, {key: value}))


def profile_path(user_id: str, field: str = "") -> str:
    return f"{CLIENT}/profile/{quote(user_id)}" + (f"/{field}" if field else "")


def alias_path(alias: str) -> str:
    return f"{CLIENT}/directory/room/{quote(alias)}"


@pytest.fixture(scope="module")
def users(two_servers: ServerPair) -> tuple[Session, Session]:
    """alice on A; bob on B, with a display name and an avatar."""
    alice = register(two_servers.first, "alice")
    bob = register(two_servers.second, "bob")
    set_profile(two_servers.second, bob, displayname="Bob of B", avatar_url="mxc://b/avatar")
    return alice, bob


# -- queries through the client API ----------------------------------------------------------


def test_a_user_reads_a_remote_profile(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    assert ok(a.authed(alice, "GET", profile_path(bob.user_id))) == {
        "displayname": "Bob of B",
        "avatar_url": "mxc://b/avatar",
    }
    assert ok(a.authed(alice, "GET", profile_path(bob.user_id, "displayname"))) == {
        "displayname": "Bob of B"
    }
    assert ok(a.authed(alice, "GET", profile_path(bob.user_id, "avatar_url"))) == {
        "avatar_url": "mxc://b/avatar"
    }
    # B holds no profile for a user it does not have
    nobody = f"@nobody:{b.server_name}"
    refused(a.authed(alice, "GET", profile_path(nobody)), 404, "M_NOT_FOUND")
    refused(a.authed(alice, "GET", profile_path(nobody, "displayname")), 404, "M_NOT_FOUND")
    # a custom field bob has not set
    refused(
        a.authed(alice, "GET", profile_path(bob.user_id, "com.example.unset")), 404, "M_NOT_FOUND"
    )


def test_a_user_resolves_a_remote_alias(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users
    room_id = create_room(b, bob, room_alias_name="lobby", preset="public_chat")
    answer = ok(a.authed(alice, "GET", alias_path(f"#lobby:{b.server_name}")))
    assert answer == {"room_id": room_id, "servers": [b.server_name]}
    refused(a.authed(alice, "GET", alias_path(f"#missing:{b.server_name}")), 404, "M_NOT_FOUND")


def test_a_server_that_cannot_be_reached(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, _ = two_servers
    alice, _ = users
    # nothing listens on port 9 of localhost: Synapse answers 502 for both
    gone = "localhost:9"
    refused(a.authed(alice, "GET", profile_path(f"@x:{gone}")), 502, "M_UNKNOWN")
    refused(a.authed(alice, "GET", alias_path(f"#x:{gone}")), 502, "M_UNKNOWN")


# -- the query endpoints themselves ------------------------------------------------------


def test_queries_need_a_signature(two_servers: ServerPair, users: tuple[Session, Session]) -> None:
    b = two_servers.second
    _, bob = users
    query = urlencode({"user_id": bob.user_id})
    refused(b.request("GET", f"{FEDERATION}/query/profile?{query}"), 401, "M_UNAUTHORIZED")
    query = urlencode({"room_alias": f"#lobby:{b.server_name}"})
    refused(b.request("GET", f"{FEDERATION}/query/directory?{query}"), 401, "M_UNAUTHORIZED")


def test_profile_query_answers_and_refusals(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    alice, bob = users

    def query(**params: str) -> Reply:
        return signed_get(a, b, f"{FEDERATION}/query/profile?{urlencode(params)}")

    assert ok(query(user_id=bob.user_id)) == {
        "displayname": "Bob of B",
        "avatar_url": "mxc://b/avatar",
    }
    assert ok(query(user_id=bob.user_id, field="avatar_url")) == {"avatar_url": "mxc://b/avatar"}
    refused(query(user_id=f"@nobody:{b.server_name}"), 404, "M_NOT_FOUND")
    # a user of another server (A's own alice), a malformed user ID, a malformed field
    refused(query(user_id=alice.user_id), 400, "M_INVALID_PARAM")
    refused(query(user_id="bob"), 400, "M_INVALID_PARAM")
    refused(query(user_id=bob.user_id, field="Not A Field"), 400, "M_INVALID_PARAM")
    refused(query(), 400, "M_MISSING_PARAM")


def test_directory_query_answers_and_refusals(
    two_servers: ServerPair, users: tuple[Session, Session]
) -> None:
    a, b = two_servers
    _, bob = users
    room_id = create_room(b, bob, room_alias_name="queried")

    def query(**params: str) -> Reply:
        return signed_get(a, b, f"{FEDERATION}/query/directory?{urlencode(params)}")

    assert ok(query(room_alias=f"#queried:{b.server_name}")) == {
        "room_id": room_id,
        "servers": [b.server_name],
    }
    refused(query(room_alias=f"#nothing:{b.server_name}"), 404, "M_NOT_FOUND")
    refused(query(room_alias=f"#queried:{a.server_name}"), 400, "M_INVALID_PARAM")
    refused(query(room_alias="queried"), 400, "M_INVALID_PARAM")
    refused(query(), 400, "M_MISSING_PARAM")
    # a query type this server has no answer for
    refused(signed_get(a, b, f"{FEDERATION}/query/m.other?x=1"), 404, "M_NOT_FOUND")


# -- make_join and server ACLs ---------------------------------------------------------


def make_join_uri(room_id: str, user_id: str, *versions: str) -> str:
    query = urlencode([("ver", v) for v in versions])
    return f"{FEDERATION}/make_join/{quote(room_id)}/{quote(user_id)}" + (
        f"?{query}" if query else ""
    )


def test_make_join_and_server_acls(two_servers: ServerPair, users: tuple[Session, Session]) -> None:
    a, b = two_servers
    _, bob = users
    room_id = create_room(b, bob, preset="public_chat", room_version="11")
    carol = f"@carol:{a.server_name}"

    # unsigned: refused before anything else
    refused(b.request("GET", make_join_uri(room_id, carol, "11")), 401, "M_UNAUTHORIZED")

    answer = ok(signed_get(a, b, make_join_uri(room_id, carol, "10", "11")))
    assert answer["room_version"] == "11"
    event = answer["event"]
    assert event["type"] == "m.room.member"
    assert event["room_id"] == room_id
    assert event["sender"] == event["state_key"] == carol
    assert event["content"] == {"membership": "join"}
    assert event["origin"] == b.server_name
    assert isinstance(event["origin_server_ts"], int)
    assert isinstance(event["depth"], int) and event["depth"] > 1
    assert len(event["prev_events"]) == 1 and event["prev_events"][0].startswith("$")
    # create, join rules and power levels (carol has no membership to cite yet)
    assert len(event["auth_events"]) == 3
    assert "signatures" not in event and "hashes" not in event

    body = refused(
        signed_get(a, b, make_join_uri(room_id, carol, "9", "10")),
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
    )
    assert body["room_version"] == "11"
    # no ver: only room version 1 is assumed
    refused(signed_get(a, b, make_join_uri(room_id, carol)), 400, "M_INCOMPATIBLE_ROOM_VERSION")
    # A may only ask for its own users
    refused(signed_get(a, b, make_join_uri(room_id, bob.user_id, "11")), 403, "M_FORBIDDEN")
    refused(
        signed_get(a, b, make_join_uri(f"!unknown:{b.server_name}", carol, "11")),
        404,
        "M_NOT_FOUND",
    )

    # an invite-only room: the auth rules would refuse carol's join
    private = create_room(b, bob, preset="private_chat", room_version="11")
    refused(signed_get(a, b, make_join_uri(private, carol, "11")), 403, "M_FORBIDDEN")

    # B's room denies A's host (both servers are localhost: ports do not count)
    acl = {"allow": ["*"], "deny": ["localhost"], "allow_ip_literals": False}
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.server_acl/"
    ok(b.authed(bob, "PUT", path, acl))
    body = refused(signed_get(a, b, make_join_uri(room_id, carol, "11")), 403, "M_FORBIDDEN")
    assert "ACL" in body["error"]
    # denied before the version is looked at
    refused(signed_get(a, b, make_join_uri(room_id, carol, "1")), 403, "M_FORBIDDEN")
    # and lifted again
    ok(b.authed(bob, "PUT", path, {"allow": ["*"]}))
    ok(signed_get(a, b, make_join_uri(room_id, carol, "11")))


# -- with Synapse ----------------------------------------------------------------------


def test_profiles_and_aliases_with_synapse(
    two_servers: ServerPair, users: tuple[Session, Session], synapse: SynapsePeer
) -> None:
    a = two_servers.first
    alice, _ = users
    set_profile(a, alice, displayname="Alice of A")
    a_room = create_room(a, alice, room_alias_name="ranvier-room")

    sam = register_on_synapse(synapse, "sam")
    set_profile(synapse, sam, displayname="Sam of Synapse")
    s_room = create_room(synapse, sam, room_alias_name="synapse-room")

    # a Ranvier user asks through Ranvier
    assert ok(a.authed(alice, "GET", profile_path(sam.user_id, "displayname"))) == {
        "displayname": "Sam of Synapse"
    }
    assert ok(a.authed(alice, "GET", profile_path(sam.user_id)))["displayname"] == (
        "Sam of Synapse"
    )
    answer = ok(a.authed(alice, "GET", alias_path(f"#synapse-room:{synapse.server_name}")))
    assert answer["room_id"] == s_room
    assert synapse.server_name in answer["servers"]
    refused(
        a.authed(alice, "GET", profile_path(f"@nobody:{synapse.server_name}")), 404, "M_NOT_FOUND"
    )

    # a Synapse user asks through Synapse
    assert ok(synapse.authed(sam, "GET", profile_path(alice.user_id, "displayname"))) == {
        "displayname": "Alice of A"
    }
    assert ok(synapse.authed(sam, "GET", profile_path(alice.user_id)))["displayname"] == (
        "Alice of A"
    )
    answer = ok(synapse.authed(sam, "GET", alias_path(f"#ranvier-room:{a.server_name}")))
    assert answer["room_id"] == a_room
    assert a.server_name in answer["servers"]
    refused(synapse.authed(sam, "GET", alias_path(f"#nothing:{a.server_name}")), 404, "M_NOT_FOUND")
