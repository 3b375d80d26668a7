"""What a transaction carries besides events, for services whose registration asks:
MSC2409 (`receive_ephemeral`: m.typing, m.receipt, m.presence, under `ephemeral` and its
unstable twin) and MSC3202 (`org.matrix.msc3202`: to-device messages for its users'
devices, device list changes, one-time key counts). A service that does not ask gets none
of it. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import (
    as_service,
    bot_joins,
    ephemeral_in,
    fresh_service,
    send,
    wait_until,
)
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    login,
    register,
)

EXTRA_KEYS = (
    "ephemeral",
    "de.sorunome.msc2409.ephemeral",
    "de.sorunome.msc2409.to_device",
    "org.matrix.msc3202.device_lists",
    "org.matrix.msc3202.device_one_time_keys_count",
    "org.matrix.msc3202.device_unused_fallback_key_types",
)


@pytest.fixture(scope="module")
def bridge(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    """Asks for everything, under the older `push_ephemeral` name."""
    yield from fresh_service(
        extra_registration={"de.sorunome.msc2409.push_ephemeral": True, "org.matrix.msc3202": True}
    )


@pytest.fixture(scope="module")
def plain(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    """Asks for events only."""
    yield from fresh_service(
        id="plain", sender_localpart="plain_bot", user_regex="@plain_.*", alias_regex="#plain_.*"
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    bridge: FakeAppService,
    plain: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[s.write_registration(directory) for s in (bridge, plain)],
    ) as running:
        yield running


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


@pytest.fixture(scope="module")
def room_id(
    server: RunningServer, alice: Session, bridge: FakeAppService, plain: FakeAppService
) -> str:
    room_id = create_room(server.url, alice)
    bot_joins(server, bridge, alice, room_id)
    bot_joins(server, plain, alice, room_id)
    return room_id


@pytest.fixture(scope="module")
def puppet(server: RunningServer, bridge: FakeAppService) -> Session:
    """A user of the bridge's namespace with a device."""
    reply = as_service(
        server,
        bridge,
        "POST",
        "/register",
        {"type": "m.login.application_service", "username": "_fake_puppet"},
    )
    assert reply.status == 200, reply.body
    body = reply.json()
    return Session(body["user_id"], body["access_token"], body["device_id"])


def entries(service: FakeAppService, kind: str, key: str = "ephemeral") -> list[dict[str, Any]]:
    return [entry for entry in ephemeral_in(service, key) if entry.get("type") == kind]


def test_typing_in_its_rooms_is_pushed_with_the_room(
    server: RunningServer, bridge: FakeAppService, alice: Session, room_id: str
) -> None:
    lonely = create_room(server.url, alice)
    for room in (lonely, room_id):
        reply = authed(
            alice,
            "PUT",
            f"{server.url}{CLIENT}/rooms/{quote(room)}/typing/{quote(alice.user_id)}",
            {"typing": True, "timeout": 30000},
        )
        assert reply.status == 200, reply.body
    typing = wait_until(
        lambda: [
            e
            for e in entries(bridge, "m.typing")
            if e["room_id"] == room_id and alice.user_id in e["content"]["user_ids"]
        ],
        "alice typing",
    )
    assert typing[0]["content"] == {"user_ids": [alice.user_id]}
    # not where the bridge has nobody
    assert all(e["room_id"] != lonely for e in entries(bridge, "m.typing"))
    # the unstable twin carries the same
    for _, body in bridge.transactions:
        if "ephemeral" in body:
            assert body["de.sorunome.msc2409.ephemeral"] == body["ephemeral"]


def test_public_receipts_are_pushed_private_ones_never(
    server: RunningServer, bridge: FakeAppService, alice: Session, room_id: str
) -> None:
    first = send(server, alice, room_id, "read privately")
    second = send(server, alice, room_id, "read publicly")
    receipt = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/receipt"
    assert authed(alice, "POST", f"{receipt}/m.read.private/{quote(first)}", {}).status == 200
    assert authed(alice, "POST", f"{receipt}/m.read/{quote(second)}", {}).status == 200

    pushed = wait_until(
        lambda: [e for e in entries(bridge, "m.receipt") if second in e["content"]],
        "the public receipt",
    )
    assert pushed[0]["room_id"] == room_id
    assert alice.user_id in pushed[0]["content"][second]["m.read"]
    assert isinstance(pushed[0]["content"][second]["m.read"][alice.user_id]["ts"], int)
    # the private one was stored before the public one, so it was looked at and left out
    for event in entries(bridge, "m.receipt"):
        for by_type in event["content"].values():
            assert "m.read.private" not in by_type


def test_presence_of_users_it_shares_rooms_with_is_pushed(
    server: RunningServer, bridge: FakeAppService, alice: Session, room_id: str
) -> None:
    stranger = register(server.url, "stranger")
    for user, message in ((stranger, "nobody sees me"), (alice, "bridging")):
        reply = authed(
            user,
            "PUT",
            f"{server.url}{CLIENT}/presence/{quote(user.user_id)}/status",
            {"presence": "online", "status_msg": message},
        )
        assert reply.status == 200, reply.body
    pushed = wait_until(
        lambda: [
            e
            for e in entries(bridge, "m.presence")
            if e["sender"] == alice.user_id and e["content"].get("status_msg") == "bridging"
        ],
        "alice's presence",
    )
    assert pushed[0]["content"]["presence"] == "online"
    # someone in no room of the bridge: stored before alice's, and left out
    assert all(e["sender"] != stranger.user_id for e in entries(bridge, "m.presence"))


def test_to_device_messages_for_its_users_come_with_their_key_counts(
    server: RunningServer, bridge: FakeAppService, alice: Session, puppet: Session
) -> None:
    upload = authed(
        puppet,
        "POST",
        f"{server.url}{CLIENT}/keys/upload",
        {"one_time_keys": {"curve25519:AAAAAQ": "a2V5MQ", "curve25519:AAAAAg": "a2V5Mg"}},
    )
    assert upload.status == 200, upload.body
    messages = {puppet.user_id: {puppet.device_id: {"ciphertext": "for the bridge"}}}
    reply = authed(
        alice,
        "PUT",
        f"{server.url}{CLIENT}/sendToDevice/m.room.encrypted/txn-bridge-1",
        {"messages": messages},
    )
    assert reply.status == 200, reply.body

    def delivered() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (message, body)
            for _, body in list(bridge.transactions)
            for message in body.get("de.sorunome.msc2409.to_device", [])
        ]

    message, body = wait_until(delivered, "the to-device message")[0]
    assert message == {
        "type": "m.room.encrypted",
        "sender": alice.user_id,
        "content": {"ciphertext": "for the bridge"},
        "to_user_id": puppet.user_id,
        "to_device_id": puppet.device_id,
    }
    counts = body["org.matrix.msc3202.device_one_time_keys_count"]
    assert counts[puppet.user_id][puppet.device_id] == {"curve25519": 2}
    fallback = body["org.matrix.msc3202.device_unused_fallback_key_types"]
    assert fallback[puppet.user_id][puppet.device_id] == []


def test_device_list_changes_of_users_in_its_rooms_are_pushed(
    server: RunningServer, bridge: FakeAppService, alice: Session, room_id: str
) -> None:
    loner = register(server.url, "loner")
    login(server.url, "loner")
    login(server.url, "alice")

    def changed() -> set[str]:
        return {
            user_id
            for _, body in list(bridge.transactions)
            for user_id in body.get("org.matrix.msc3202.device_lists", {}).get("changed", [])
        }

    wait_until(lambda: alice.user_id in changed(), "alice's new device")
    assert loner.user_id not in changed()
    for _, body in bridge.transactions:
        if "org.matrix.msc3202.device_lists" in body:
            assert body["org.matrix.msc3202.device_lists"]["left"] == []


def test_a_service_that_did_not_ask_gets_events_only(
    server: RunningServer, plain: FakeAppService, alice: Session, room_id: str
) -> None:
    marker = send(server, alice, room_id, "the end")
    wait_until(lambda: any(e["event_id"] == marker for e in plain.events()), "the marker")
    assert plain.transactions
    for _, body in plain.transactions:
        assert not set(EXTRA_KEYS) & set(body), body
