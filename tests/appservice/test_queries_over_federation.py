"""User queries for invites from other servers (spec: application-service-api "Querying"):
another server inviting a bridge's puppet nobody registered yet asks the bridge, which may
register it there and then; on both engines, the inviting server a scripted fake."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.event_builder import EventTemplate, build_unsigned_pdu
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing import sign_event
from tests.appservice.fake_appservice import FakeAppService, Received
from tests.federation.conftest import test_ca  # noqa: F401 (a fixture for this module)
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, start_federating_server
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT

APP = "/_matrix/app/v1"
VERSION = KNOWN_ROOM_VERSIONS["10"]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:  # noqa: F811
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    test_ca: FederationCA,  # noqa: F811
    appservice: FakeAppService,
) -> Iterator[FederatingServer]:
    directory = tmp_path_factory.mktemp("hs")
    registration = appservice.write_registration(directory)
    running = start_federating_server(
        directory, module_database, test_ca, app_service_config_files=[registration]
    )
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


def invite_from(fake: FakeServer, server: FederatingServer, invitee: str) -> Reply:
    """A signed invite of `invitee` to a room only the fake has, put to `server`."""
    room_id = f"!{secrets.token_hex(6)}:{fake.server_name}"
    pdu = build_unsigned_pdu(
        EventTemplate(
            "m.room.member", fake.user("inviter"), {"membership": "invite"}, room_id, invitee
        ),
        room_version=VERSION,
        prev_events=[],
        current_state={},
        server_name=fake.server_name,
    )
    invite = sign_event(pdu, fake.server_name, fake.signing_key, VERSION)
    event_id = compute_event_id(invite, VERSION)
    uri = f"/_matrix/federation/v2/invite/{quote(room_id)}/{quote(event_id)}"
    body = {"room_version": VERSION.identifier, "event": invite, "invite_room_state": []}
    return fake.request(server, "PUT", uri, body)


def asked(appservice: FakeAppService, user_id: str) -> list[Received]:
    return [r for r in appservice.requests if r.path == f"{APP}/users/{user_id}"]


def test_a_remote_invite_of_an_unknown_puppet_asks_the_bridge_which_registers_it(
    server: FederatingServer, fake: FakeServer, appservice: FakeAppService
) -> None:
    localpart = f"_fake_remote_{server.port}"
    puppet = f"@{localpart}:{server.server_name}"

    def register_puppet(_received: Received) -> tuple[int, Any]:
        reply = server.request(
            "POST",
            CLIENT + "/register",
            {"type": "m.login.application_service", "username": localpart},
            {"Authorization": f"Bearer {appservice.as_token}"},
        )
        assert reply.status == 200, reply.body
        return 200, {}

    appservice.answers[("GET", f"{APP}/users/{puppet}")] = register_puppet

    reply = invite_from(fake, server, puppet)

    assert reply.status == 200, reply.body
    assert server.server_name in reply.json()["event"]["signatures"]
    (query,) = asked(appservice, puppet)
    assert query.authorization == f"Bearer {appservice.hs_token}"


def test_a_remote_invite_of_a_puppet_the_bridge_does_not_provide_is_refused(
    server: FederatingServer, fake: FakeServer, appservice: FakeAppService
) -> None:
    # in the namespace (the fake answers 404), and outside every namespace
    missing = f"@_fake_missing_{server.port}:{server.server_name}"
    stranger = f"@stranger_{server.port}:{server.server_name}"
    for invitee in (missing, stranger):
        reply = invite_from(fake, server, invitee)
        assert (reply.status, reply.json()["errcode"]) == (404, "M_NOT_FOUND"), reply.body
    assert len(asked(appservice, missing)) == 1
    assert not asked(appservice, stranger)
