"""Transactions pushed to a service (spec: application-service-api "Pushing events"): the
events it is interested in, in order, in client format, each transaction ID used once and
retried unchanged until acknowledged. Both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import (
    as_service,
    bot_joins,
    events_in,
    fresh_service,
    send,
    transaction_requests,
    txn_id_of,
    wait_until,
)
from tests.integration.client import request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    yield from fresh_service()


def test_events_of_its_rooms_arrive_in_order_in_client_format(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    bot = bot_joins(server, appservice, alice, room_id)
    sent = [send(server, alice, room_id, f"message {n}") for n in range(12)]

    wait_until(
        lambda: {e["event_id"] for e in events_in(appservice, room_id)} >= set(sent),
        "the messages to reach the service",
    )
    received = events_in(appservice, room_id)
    messages = [e for e in received if e["type"] == "m.room.message"]
    assert [e["event_id"] for e in messages] == sent
    assert [e["content"]["body"] for e in messages] == [f"message {n}" for n in range(12)]
    first = messages[0]
    assert first["sender"] == alice.user_id and first["room_id"] == room_id
    assert isinstance(first["origin_server_ts"], int) and "age" in first["unsigned"]
    # client format: no federation fields
    assert not {"auth_events", "prev_events", "hashes", "signatures", "depth"} & set(first)
    # the bot's invite and join reached it before the messages, the join with what it
    # replaced
    memberships = [e for e in received if e["type"] == "m.room.member" and e["state_key"] == bot]
    assert [e["content"]["membership"] for e in memberships] == ["invite", "join"]
    invite, join = memberships
    assert received.index(invite) < received.index(join) < received.index(first)
    assert join["unsigned"]["prev_content"]["membership"] == "invite"
    # nothing twice
    ids = [e["event_id"] for e in received]
    assert len(ids) == len(set(ids))


def test_each_transaction_id_is_used_once_increasing_with_the_hs_token(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    bot_joins(server, appservice, alice, room_id)
    last = send(server, alice, room_id, "counted")
    wait_until(lambda: any(e["event_id"] == last for e in appservice.events()), "the message")

    ids = [int(txn_id) for txn_id, _ in appservice.transactions]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    for received in transaction_requests(appservice):
        assert received.authorization == f"Bearer {appservice.hs_token}"
        # only services of the legacy option get the token in the query
        assert "access_token" not in received.query


def test_rooms_where_it_has_nobody_are_not_sent(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    private = create_room(server.url, alice)
    secret = send(server, alice, private, "not for bridges")
    watched = create_room(server.url, alice)
    bot_joins(server, appservice, alice, watched)
    marker = send(server, alice, watched, "marker")
    # the service's loop reads the stream in order: once the later marker is there, the
    # earlier message was looked at and left out
    wait_until(lambda: any(e["event_id"] == marker for e in appservice.events()), "the marker")
    assert events_in(appservice, private) == []
    assert secret not in {e["event_id"] for e in appservice.events()}


def test_a_membership_of_its_user_is_sent_from_a_room_it_is_not_in(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    puppet = "@_fake_invitee:test.localhost"
    registered = as_service(
        server,
        appservice,
        "POST",
        "/register",
        {"type": "m.login.application_service", "username": "_fake_invitee"},
    )
    assert registered.status == 200, registered.body
    room_id = create_room(server.url, alice, name="Bridged DM")
    before = send(server, alice, room_id, "before the invite")
    invite = authed(
        alice, "POST", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/invite", {"user_id": puppet}
    )
    assert invite.status == 200, invite.body

    event = wait_until(
        lambda: next(
            (
                e
                for e in events_in(appservice, room_id)
                if e["type"] == "m.room.member" and e["state_key"] == puppet
            ),
            None,
        ),
        "the invite",
    )
    assert event["content"]["membership"] == "invite" and event["sender"] == alice.user_id
    # what the invitee would see of the room, as in /sync's invite_state: the invite last
    stripped = event["unsigned"]["invite_room_state"]
    assert {"type": "m.room.name", "state_key": "", "content": {"name": "Bridged DM"}}.items() <= (
        next(e for e in stripped if e["type"] == "m.room.name").items()
    )
    assert any(e["type"] == "m.room.create" for e in stripped)
    assert stripped[-1]["type"] == "m.room.member" and stripped[-1]["state_key"] == puppet
    # nobody of the service was in the room: the room's other events are not its business
    assert before not in {e["event_id"] for e in appservice.events()}


def test_a_room_with_its_alias_is_sent(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    alias = "#_fake_aliased:test.localhost"
    created = as_service(
        server, appservice, "PUT", f"/directory/room/{quote(alias)}", {"room_id": room_id}
    )
    assert created.status == 200, created.body
    message = send(server, alice, room_id, "in a room the bridge has an alias of")
    wait_until(
        lambda: any(e["event_id"] == message for e in appservice.events()), "the aliased room"
    )


def test_a_failing_service_gets_the_same_transaction_again_and_nothing_twice(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    bot = bot_joins(server, appservice, alice, room_id)
    wait_until(
        lambda: any(
            e["type"] == "m.room.member"
            and e["state_key"] == bot
            and e["content"]["membership"] == "join"
            for e in events_in(appservice, room_id)
        ),
        "the bot's join",
    )
    already = len(transaction_requests(appservice))
    appservice.fail_transactions = 2
    message = send(server, alice, room_id, "retried")
    later = send(server, alice, room_id, "after the retries")

    wait_until(
        lambda: {message, later} <= {e["event_id"] for e in appservice.events()},
        "the transaction to be acknowledged",
        timeout=30,
    )
    attempts = [
        received
        for received in transaction_requests(appservice)[already:]
        if message in {e["event_id"] for e in received.body["events"]}
    ]
    # refused twice, then acknowledged: the same ID and body each time (after 1 s, 2 s)
    assert len(attempts) == 3
    assert len({txn_id_of(received) for received in attempts}) == 1
    assert all(received.body == attempts[0].body for received in attempts)
    sent_ids = [e["event_id"] for e in appservice.events()]
    assert sent_ids.count(message) == 1 and sent_ids.count(later) == 1
    assert sent_ids.index(message) < sent_ids.index(later)


def test_a_service_back_from_an_outage_that_pings_is_sent_its_backlog_at_once(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    bot_joins(server, appservice, alice, room_id)
    wait_until(lambda: bool(events_in(appservice, room_id)), "the bot's join")
    already = len(transaction_requests(appservice))
    appservice.fail_transactions = 3
    message = send(server, alice, room_id, "sent while the bridge is down")
    # refused at once, after 1 s and after 2 s more: the next try would be 4 s later
    wait_until(
        lambda: (
            len(transaction_requests(appservice)) - already >= 3
            and appservice.fail_transactions == 0
        ),
        "three refused attempts",
        timeout=15,
    )

    pinged = time.monotonic()
    reply = request(
        "POST",
        server.url + f"/_matrix/client/v1/appservice/{appservice.id}/ping",
        {"transaction_id": "back"},
        {"Authorization": f"Bearer {appservice.as_token}"},
    )
    assert reply.status == 200, reply.body
    wait_until(
        lambda: message in {e["event_id"] for e in appservice.events()},
        "the backlog after the ping",
        timeout=10,
    )
    # what the backoff alone would take is 4 s
    assert time.monotonic() - pinged < 2.5


def test_once_its_users_leave_the_room_is_no_longer_sent(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    room_id = create_room(server.url, alice)
    bot = bot_joins(server, appservice, alice, room_id)
    while_in = send(server, alice, room_id, "while the bot is in")
    wait_until(lambda: any(e["event_id"] == while_in for e in appservice.events()), "it")
    left = as_service(server, appservice, "POST", f"/rooms/{quote(room_id)}/leave", {})
    assert left.status == 200, left.body
    after = send(server, alice, room_id, "after the bot left")
    watched = create_room(server.url, alice)
    bot_joins(server, appservice, alice, watched)
    marker = send(server, alice, watched, "marker")

    wait_until(lambda: any(e["event_id"] == marker for e in appservice.events()), "the marker")
    # its own leave is about its user; what follows is not its business any more
    leave = [
        e
        for e in events_in(appservice, room_id)
        if e["type"] == "m.room.member" and e["content"]["membership"] == "leave"
    ]
    assert [e["state_key"] for e in leave] == [bot]
    assert after not in {e["event_id"] for e in appservice.events()}
