"""The resident server passes on what other servers hand it (spec server-server-api
"Joining Rooms", send_leave, send_knock): a join, leave or knock a fake server makes
through one Ranvier server reaches the other Ranvier server in the room at once, not when
a later event happens to name it. And an invite goes to the invitee's server only through
/invite: a server outside the room gets none of its events through /send.

A (SQLite) hosts each room, B (PostgreSQL) is in it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import has_message, ok, sync_until
from tests.federation.test_membership_handshakes import (
    countersigning,
    create_room,
    membership,
    send,
    template,
)
from tests.integration.matrix import CLIENT, Session

FED = "/_matrix/federation"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def shared_room(two_servers: ServerPair, **body: Any) -> tuple[str, Session, Session]:
    a, b = two_servers
    tag = secrets.token_hex(3)
    alice = register(a, f"alice{tag}")
    bob = register(b, f"bob{tag}")
    room_id = create_room(a, alice, **body)
    if body.get("preset") != "public_chat":
        path = f"{CLIENT}/rooms/{quote(room_id)}/invite"
        ok(a.authed(alice, "POST", path, {"user_id": bob.user_id}))
    ok(b.authed(bob, "POST", f"{CLIENT}/join/{quote(room_id)}?server_name={a.server_name}"))
    return room_id, alice, bob


def eventually(what: str, probe: Callable[[], Any], expected: Any, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (seen := probe()) != expected:
        assert time.monotonic() < deadline, f"{what}: {seen!r}, not {expected!r}"
        time.sleep(0.1)


def hands_over(fake: FakeServer, a: FederatingServer, kind: str, room_id: str, user: str) -> None:
    version, pdu = template(fake, a, kind, room_id, user)
    event = fake.sign(pdu, version)
    ok(send(fake, a, f"v{1 if kind == 'knock' else 2}/send_{kind}", event.pdu, event.event_id))


def test_a_join_and_a_leave_through_the_resident_server_reach_the_other_server(
    two_servers: ServerPair, fake: FakeServer
) -> None:
    a, b = two_servers
    room_id, alice, bob = shared_room(two_servers, preset="public_chat")
    mallory = fake.user(f"mallory{secrets.token_hex(3)}")
    fake.join(a, room_id, mallory)
    eventually("B's view of the join", lambda: membership(b, bob, room_id, mallory), "join")
    hands_over(fake, a, "leave", room_id, mallory)
    eventually("B's view of the leave", lambda: membership(b, bob, room_id, mallory), "leave")
    assert membership(a, alice, room_id, mallory) == "leave"


def test_a_knock_through_the_resident_server_reaches_the_other_server(
    two_servers: ServerPair, fake: FakeServer
) -> None:
    a, b = two_servers
    room_id, _alice, bob = shared_room(
        two_servers,
        room_version="10",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}
        ],
    )
    knocker = fake.user(f"knocker{secrets.token_hex(3)}")
    hands_over(fake, a, "knock", room_id, knocker)
    eventually("B's view of the knock", lambda: membership(b, bob, room_id, knocker), "knock")


def test_an_invite_reaches_a_server_outside_the_room_only_through_invite(
    two_servers: ServerPair, fake: FakeServer
) -> None:
    a, b = two_servers
    room_id, alice, bob = shared_room(two_servers, preset="public_chat")
    fake.route("PUT", f"{FED}/v2/invite/{room_id}/", countersigning(fake, wrap_v1=False))
    guest = fake.user(f"guest{secrets.token_hex(3)}")
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": guest}))
    eventually("B's view of the invite", lambda: membership(b, bob, room_id, guest), "invite")
    # B got the invite from A's queue; a message after it shows the queue has moved on
    ok(
        a.authed(
            alice,
            "PUT",
            f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t1",
            {"msgtype": "m.text", "body": "after the invite"},
        )
    )
    sync_until(b, bob, has_message(room_id, "after the invite"))
    time.sleep(0.5)
    pushed = [
        pdu
        for request in fake.received
        if request.path.startswith(f"{FED}/v1/send/")
        for pdu in request.body.get("pdus", [])
        if pdu.get("room_id") == room_id
    ]
    assert pushed == []
    assert [r.method for r in fake.received if f"/invite/{room_id}/" in r.path] == ["PUT"]
