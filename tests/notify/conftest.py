"""One homeserver per test module, on each engine, with email notifications on (a short
delay before mail), an SMTP server capturing what it sends (`mailbox`), and a scripted
identity server over HTTPS that the homeserver trusts (`identity_server`)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ranvier.config import load_config
from ranvier.storage.database import open_database
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG
from tests.notify.fake_identity_server import FakeIdentityServer
from tests.notify.mailbox import Mailbox

__all__ = ["module_database"]

DELAY_SECONDS = 1.0
CLIENT_BASE_URL = "https://chat.example.org"
INVITE_CLIENT_LOCATION = "https://invites.example.org"


def email_section(mailbox: Mailbox) -> dict[str, Any]:
    """Notification mails through `mailbox`, a short delay before each."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "notif_from": "Your %(app)s homeserver <noreply@test.localhost>",
        "app_name": "Ranvier Test",
        "enable_notifs": True,
        "notif_for_new_users": True,
        "notif_delay_before_mail": f"{int(DELAY_SECONDS * 1000)}ms",
        "client_base_url": CLIENT_BASE_URL,
        "invite_client_location": INVITE_CLIENT_LOCATION,
    }


@pytest.fixture(scope="module")
def mailbox(module_database: dict[str, Any]) -> Iterator[Mailbox]:
    box = Mailbox().start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="module")
def identity_server(module_database: dict[str, Any]) -> Iterator[FakeIdentityServer]:
    fake = FakeIdentityServer().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    mailbox: Mailbox,
    identity_server: FakeIdentityServer,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    email = email_section(mailbox)
    # the server process trusts the identity server's test CA (as the system's CAs)
    previous = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(identity_server.write_ca(directory))
    try:
        with serving(
            directory,
            module_database,
            **REGISTRATION_CONFIG,
            email=email,
            rc_third_party_invite={"per_second": 1000, "burst_count": 1000},
        ) as running:
            identity_server.homeserver_url = running.url
            yield running
    finally:
        if previous is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = previous


def add_validated_email(server: RunningServer, user_id: str, address: str) -> None:
    """Give the user a validated address, as completing the email validation would."""

    # the email part's store, imported here so the identity tests need only what they use
    from ranvier.storage.threepids import ThreepidStore

    async def add() -> None:
        database = await open_database(load_config(server.config_path).database)
        try:
            now = int(time.time() * 1000)
            await ThreepidStore(database).add(user_id, "email", address, now, now)
        finally:
            await database.close()

    asyncio.run(add())
