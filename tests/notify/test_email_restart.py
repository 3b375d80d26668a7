"""Notification mails across a restart, as the user's mailbox sees them: what was mailed is
not mailed again, and a room's throttle still holds; on both engines."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.homeserver import free_port, start_server, write_test_config
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, authed, login, register, send_text
from tests.notify.conftest import DELAY_SECONDS, add_validated_email, email_section
from tests.notify.mailbox import Mailbox
from tests.notify.test_email_notifications import _email_pusher, _no_mail_for, _room_with


@pytest.fixture(scope="module")
def config(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], mailbox: Mailbox
) -> tuple[Path, int]:
    port = free_port()
    path = write_test_config(
        tmp_path_factory.mktemp("hs"),
        module_database,
        port,
        **REGISTRATION_CONFIG,
        email=email_section(mailbox),
    )
    return path, port


def test_a_restart_neither_mails_again_nor_forgets_a_throttle(
    config: tuple[Path, int], mailbox: Mailbox
) -> None:
    server = start_server(*config)
    try:
        suffix = secrets.token_hex(3)
        alice = register(server.url, f"alice_{suffix}")
        bob = register(server.url, f"bob_{suffix}")
        address = f"alice_{suffix}@mail.example.org"
        add_validated_email(server, alice.user_id, address)
        reply = authed(alice, "POST", server.url + CLIENT + "/pushers/set", _email_pusher(address))
        assert reply.status == 200, reply.body
        room = _room_with(server, bob, alice, "Restart room")
        send_text(server.url, bob, room, "before the first mail")
        mailbox.wait_for(address, 1)
        send_text(server.url, bob, room, "before the second mail")
        mailbox.wait_for(address, 2)
        # the room's throttle is now a day long
        send_text(server.url, bob, room, "held back by the throttle")
    finally:
        assert server.stop() == 0, server.log()
    server = start_server(*config)
    try:
        _no_mail_for(mailbox, address, 2, DELAY_SECONDS * 3)
        bob = login(server.url, f"bob_{suffix}")
        send_text(server.url, bob, room, "still held back")
        _no_mail_for(mailbox, address, 2, DELAY_SECONDS * 2)
        mails = mailbox.to(address)
        assert "before the first mail" in mails[0].part("plain")
        assert "before the first mail" not in mails[1].part("plain")
    finally:
        assert server.stop() == 0, server.log()
