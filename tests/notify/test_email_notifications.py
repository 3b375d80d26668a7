"""Notification mails (an `email` pusher), as the user and their mailbox see them: one mail
after the delay for what is unread across rooms, none for what they read, throttling per
room, encrypted messages summarised, and the unsubscribe link; on both engines."""

from __future__ import annotations

import html
import re
import secrets
import time
from urllib.parse import quote, urlsplit

from tests.integration.client import request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed, create_room, register, send_text
from tests.notify.conftest import CLIENT_BASE_URL, DELAY_SECONDS, add_validated_email
from tests.notify.mailbox import Mail, Mailbox


def _user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}_{secrets.token_hex(3)}")


def _email_pusher(address: str) -> dict[str, object]:
    return {
        "kind": "email",
        "app_id": "m.email",
        "pushkey": address,
        "app_display_name": "Email Notifications",
        "device_display_name": address,
        "lang": "en",
        "data": {},
    }


def _with_pusher(server: RunningServer, name: str, tag: str = "") -> tuple[Session, str]:
    """A user with a validated address (`tag` added to its local part) and an email pusher
    for it."""
    user = _user(server, name)
    address = f"{user.user_id[1:].split(':')[0]}{tag}@mail.example.org"
    add_validated_email(server, user.user_id, address)
    reply = authed(user, "POST", server.url + CLIENT + "/pushers/set", _email_pusher(address))
    assert reply.status == 200, reply.body
    return user, address


def _room_with(server: RunningServer, owner: Session, member: Session, name: str) -> str:
    room_id = create_room(server.url, owner, name=name, invite=[member.user_id])
    reply = authed(member, "POST", server.url + CLIENT + f"/rooms/{quote(room_id)}/join", {})
    assert reply.status == 200, reply.body
    return room_id


def _send(server: RunningServer, session: Session, room_id: str, kind: str, content: dict) -> str:
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/send/{kind}"
    reply = authed(session, "POST", url, content)
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def _read(server: RunningServer, session: Session, room_id: str, event_id: str) -> None:
    url = server.url + CLIENT + f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}"
    reply = authed(session, "POST", url, {})
    assert reply.status == 200, reply.body


def _no_mail_for(mailbox: Mailbox, address: str, count: int, seconds: float) -> None:
    time.sleep(seconds)
    assert len(mailbox.to(address)) == count, [m.subject for m in mailbox.to(address)]


def test_one_mail_after_the_delay_for_messages_in_two_rooms(
    server: RunningServer, mailbox: Mailbox
) -> None:
    alice, address = _with_pusher(server, "alice")
    bob = _user(server, "bob")
    garden = _room_with(server, bob, alice, "Garden club")
    chess = _room_with(server, bob, alice, "Chess night")
    sent = time.monotonic()
    send_text(server.url, bob, garden, "The tomatoes are ripe")
    send_text(server.url, bob, chess, "Rematch on Friday?")
    _send(
        server,
        bob,
        chess,
        "m.room.encrypted",
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "SECRETCIPHERTEXT", "device_id": "D"},
    )
    # nothing before the delay
    _no_mail_for(mailbox, address, 0, DELAY_SECONDS * 0.5)
    [mail] = mailbox.wait_for(address)
    assert mail.received_at - sent >= DELAY_SECONDS
    # batched: the three notifications make one mail, and no second one follows
    _no_mail_for(mailbox, address, 1, DELAY_SECONDS * 1.5)
    text, html = mail.part("plain"), mail.part("html")
    for body in (text, html):
        assert "Garden club" in body and "Chess night" in body
        assert "The tomatoes are ripe" in body and "Rematch on Friday?" in body
        assert "an encrypted message" in body
        assert "SECRETCIPHERTEXT" not in body
        assert f"{CLIENT_BASE_URL}/#/room/{garden}" in body
        assert f"{CLIENT_BASE_URL}/#/room/{chess}" in body
    assert "Ranvier Test" in mail.subject
    assert mail.message["From"] == "Your Ranvier Test homeserver <noreply@test.localhost>"
    assert mail.message["List-Unsubscribe"]


def test_no_mail_for_what_was_read(server: RunningServer, mailbox: Mailbox) -> None:
    alice, address = _with_pusher(server, "reader")
    bob = _user(server, "bob")
    room = _room_with(server, bob, alice, "Book club")
    event_id = send_text(server.url, bob, room, "Chapter three tonight")
    _read(server, alice, room, event_id)
    _no_mail_for(mailbox, address, 0, DELAY_SECONDS * 2.5)
    # what came after the receipt is still mailed
    send_text(server.url, bob, room, "Bring snacks")
    [mail] = mailbox.wait_for(address)
    assert "Bring snacks" in mail.part("plain")
    assert "Chapter three tonight" not in mail.part("plain")


def test_a_room_is_throttled_while_the_user_does_not_read(
    server: RunningServer, mailbox: Mailbox
) -> None:
    alice, address = _with_pusher(server, "busy")
    bob = _user(server, "bob")
    room = _room_with(server, bob, alice, "Chatty room")
    send_text(server.url, bob, room, "first")
    mailbox.wait_for(address, 1)
    # the room's first throttle is the delay itself: the next mail comes after it
    send_text(server.url, bob, room, "second")
    second = mailbox.wait_for(address, 2)[1]
    assert "second" in second.part("plain") and "first" not in second.part("plain")
    # then the throttle grows (to a day): nothing more for this room for now
    send_text(server.url, bob, room, "third")
    _no_mail_for(mailbox, address, 2, DELAY_SECONDS * 3)
    # another room is not held back by this one's throttle, and its mail carries the
    # throttled room's message too
    other = _room_with(server, bob, alice, "Quiet room")
    send_text(server.url, bob, other, "hello from elsewhere")
    third = mailbox.wait_for(address, 3)[2]
    assert "hello from elsewhere" in third.part("plain")
    assert "third" in third.part("plain")


def _unsubscribe_link(mail: Mail, server: RunningServer) -> str:
    link = mail.message["List-Unsubscribe"].strip("<>")
    assert link in mail.part("plain")
    parts = urlsplit(link)
    assert parts.path == "/_synapse/client/unsubscribe"
    return f"{server.url}{parts.path}?{parts.query}"


def test_the_unsubscribe_link_removes_the_pusher(server: RunningServer, mailbox: Mailbox) -> None:
    # a '+' in the address must survive the link and the page's form
    alice, address = _with_pusher(server, "leaver", "+news")
    bob = _user(server, "bob")
    room = _room_with(server, bob, alice, "Newsletter")
    send_text(server.url, bob, room, "Issue 1")
    [mail] = mailbox.wait_for(address)
    link = _unsubscribe_link(mail, server)
    pushers = server.url + CLIENT + "/pushers"
    # opening the link only asks: a scanner following links removes nothing
    page = request("GET", link)
    assert page.status == 200 and b"<form" in page.body
    assert len(authed(alice, "GET", pushers).json()["pushers"]) == 1
    # a link altered in any part is refused
    forged = link.replace(quote(address, safe=""), quote("x" + address, safe=""))
    assert request("POST", forged).status == 403
    assert request("POST", link + "x").status == 403
    assert request("POST", link.split("&access_token")[0]).status == 400
    # the page's button posts to the link, as a browser would
    action = re.search(r'<form method="post" action="([^"]+)"', page.body.decode())
    assert action is not None
    done = request("POST", server.url + html.unescape(action.group(1)))
    assert done.status == 200, done.body
    assert address in done.body.decode()
    assert authed(alice, "GET", pushers).json()["pushers"] == []
    send_text(server.url, bob, room, "Issue 2")
    _no_mail_for(mailbox, address, 1, DELAY_SECONDS * 2.5)


def test_email_pushers_are_refused_for_addresses_not_validated(server: RunningServer) -> None:
    alice, address = _with_pusher(server, "picky")
    url = server.url + CLIENT + "/pushers/set"
    other = authed(alice, "POST", url, _email_pusher("someone.else@mail.example.org"))
    assert (other.status, other.errcode) == (400, "M_THREEPID_NOT_FOUND")
    wrong_app = authed(alice, "POST", url, {**_email_pusher(address), "app_id": "org.example"})
    assert (wrong_app.status, wrong_app.errcode) == (400, "M_INVALID_PARAM")
    listed = authed(alice, "GET", server.url + CLIENT + "/pushers").json()["pushers"]
    assert [(p["kind"], p["app_id"], p["pushkey"]) for p in listed] == [
        ("email", "m.email", address)
    ]


def test_an_invite_is_mailed_with_its_own_subject(server: RunningServer, mailbox: Mailbox) -> None:
    alice, address = _with_pusher(server, "invitee")
    bob = _user(server, "host")
    room_id = create_room(server.url, bob, name="Party")
    reply = authed(
        bob,
        "POST",
        server.url + CLIENT + f"/rooms/{quote(room_id)}/invite",
        {"user_id": alice.user_id},
    )
    assert reply.status == 200, reply.body
    [mail] = mailbox.wait_for(address)
    assert "has invited you to join the Party room on Ranvier Test" in mail.subject
    assert "You have been invited to this room." in mail.part("plain")
    assert f"{CLIENT_BASE_URL}/#/room/{room_id}" in mail.part("html")
