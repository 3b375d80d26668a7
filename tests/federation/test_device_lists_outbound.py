"""What a server sharing a room with our users hears of their devices: a fake remote server
joined to a room of alice's receives, in its transactions, an m.device_list_update per
device change (new device, new keys, deleted device), chained by prev_id as SyTest's
"Local device key changes get to remote servers with correct prev_id" expects, and an
m.signing_key_update for a cross-signing upload; with
allow_device_name_lookup_over_federation the device names go along, and are served by
/user/devices and /user/keys/query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ranvier.protocol.signing import sign_json
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, federating, register
from tests.federation.replies import ok
from tests.federation.test_e2ee_across_servers import delete_device, login, upload_keys
from tests.integration.matrix import CLIENT
from tests.integration.test_e2e_keys import CrossSigning, Device

FEDERATION = "/_matrix/federation/v1"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA, sqlite_section: Any
) -> Iterator[FederatingServer]:
    with federating(
        tmp_path_factory.mktemp("hs"),
        sqlite_section,
        test_ca,
        allow_device_name_lookup_over_federation=True,
    ) as running:
        yield running


@pytest.fixture
def fake(test_ca: FederationCA, tmp_path: Path) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path / "fake") as running:
        yield running


def edus_received(fake: FakeServer, edu_type: str, count: int) -> list[dict[str, Any]]:
    """The contents of the first `count` EDUs of the type in the fake's transactions."""
    deadline = time.monotonic() + 30.0
    while True:
        found = [
            edu["content"]
            for request in list(fake.received)
            if request.path.startswith(f"{FEDERATION}/send/") and isinstance(request.body, dict)
            for edu in request.body.get("edus", [])
            if edu.get("edu_type") == edu_type
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} {edu_type} EDUs"
        time.sleep(0.1)


def test_servers_sharing_a_room_hear_of_each_device_change_in_a_chain(
    server: FederatingServer, fake: FakeServer
) -> None:
    alice = register(server, "alice")
    room = {"preset": "public_chat"}
    room_id: str = ok(server.authed(alice, "POST", CLIENT + "/createRoom", room))["room_id"]
    fake.join(server, room_id, fake.user("walrus"))

    laptop = Device(alice)
    upload_keys(server, laptop)
    (keys,) = edus_received(fake, "m.device_list_update", 1)
    assert keys["user_id"] == alice.user_id
    assert keys["device_id"] == alice.device_id
    assert keys["keys"] == laptop.device_keys()
    assert keys["deleted"] is False
    # the device was created before anyone shared a room: that change is the prev_id
    assert len(keys["prev_id"]) == 1 and keys["prev_id"][0] < keys["stream_id"]

    phone = login(server, alice, "PHONE")
    new_device_update = edus_received(fake, "m.device_list_update", 2)[1]
    assert new_device_update["device_id"] == "PHONE"
    assert new_device_update["prev_id"] == [keys["stream_id"]]
    assert new_device_update["device_display_name"] == f"PHONE of {alice.user_id}"
    assert "keys" not in new_device_update

    upload_keys(server, Device(phone))
    with_keys = edus_received(fake, "m.device_list_update", 3)[2]
    assert with_keys["device_id"] == "PHONE"
    assert with_keys["prev_id"] == [new_device_update["stream_id"]]
    assert with_keys["keys"]["device_id"] == "PHONE"

    delete_device(server, alice, "PHONE")
    deleted = edus_received(fake, "m.device_list_update", 4)[3]
    assert (deleted["device_id"], deleted["deleted"]) == ("PHONE", True)
    assert deleted["prev_id"] == [with_keys["stream_id"]]
    assert "keys" not in deleted

    cross_signing = CrossSigning.for_user(alice.user_id)
    upload = CLIENT + "/keys/device_signing/upload"
    ok(server.authed(alice, "POST", upload, cross_signing.upload_body()))
    (signing,) = edus_received(fake, "m.signing_key_update", 1)
    assert signing == {
        "user_id": alice.user_id,
        "master_key": cross_signing.master.unsigned_json(),
        "self_signing_key": cross_signing.self_signing.signed_by(cross_signing.master),
    }
    # a cross-signing change is no device change
    assert len(edus_received(fake, "m.device_list_update", 4)) == 4

    # alice signs her laptop with her self-signing key: the laptop's keys go out again,
    # signed, following on from the deletion
    signed_laptop = sign_json(
        laptop.device_keys(), alice.user_id, cross_signing.self_signing.signing
    )
    body = {alice.user_id: {alice.device_id: signed_laptop}}
    uploaded = ok(server.authed(alice, "POST", CLIENT + "/keys/signatures/upload", body))
    assert uploaded["failures"] == {}
    resent = edus_received(fake, "m.device_list_update", 5)[4]
    assert resent["device_id"] == alice.device_id
    assert resent["prev_id"] == [deleted["stream_id"]]
    assert resent["keys"] == signed_laptop


def test_device_names_are_served_when_the_option_allows(
    server: FederatingServer, fake: FakeServer
) -> None:
    bob = register(server, "bob")
    device = Device(bob)
    upload_keys(server, device)
    path = f"{CLIENT}/devices/{quote(bob.device_id)}"
    ok(server.authed(bob, "PUT", path, {"display_name": "Bob's rabbit hole"}))
    reply = fake.request(server, "GET", f"{FEDERATION}/user/devices/{quote(bob.user_id)}")
    devices = ok(reply)["devices"]
    assert devices == [
        {
            "device_id": bob.device_id,
            "keys": device.device_keys(),
            "device_display_name": "Bob's rabbit hole",
        }
    ]
    body = {"device_keys": {bob.user_id: [bob.device_id]}}
    keys = ok(fake.request(server, "POST", f"{FEDERATION}/user/keys/query", body))
    served = keys["device_keys"][bob.user_id][bob.device_id]
    assert served["unsigned"] == {"device_display_name": "Bob's rabbit hole"}
