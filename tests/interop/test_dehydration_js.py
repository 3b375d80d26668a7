"""Dehydrated devices (MSC3814) with matrix-js-sdk and its Rust crypto, a real client,
against Ranvier: the room key Alice sends while Bob has no logged-in device reaches only his
dehydrated device, and a new login of Bob rehydrates it and decrypts the message.

tests/interop/js/dehydration.mjs runs the clients in Node and prints what each step saw as
one JSON line; these tests assert on that and on what the server answers. Node and the
project in tests/interop/js (`npm ci`, which `make test` runs) are required.
"""

from __future__ import annotations

import pytest

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, authed, login
from tests.interop.node import Run, run_alice_and_bob

SCRIPT = "dehydration.mjs"
SCRIPT_TIMEOUT = 150.0
BODY = "Drink me: a message for a device that is not there"
DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"


@pytest.fixture(scope="module")
def rehydration(server: RunningServer) -> Run:
    return run_alice_and_bob(server, SCRIPT, BODY, SCRIPT_TIMEOUT)


def test_the_client_sees_dehydration_supported_and_stores_a_device(
    rehydration: Run,
) -> None:
    result = rehydration.result
    assert result["dehydration_supported"] is True
    assert result["dehydrated_device_id"] != rehydration.bob.device_id


def test_alice_encrypts_for_the_dehydrated_device_alone(rehydration: Run) -> None:
    result = rehydration.result
    assert result["bob_devices_seen_by_alice"] == [result["dehydrated_device_id"]]


def test_a_new_login_decrypts_only_after_rehydrating(rehydration: Run) -> None:
    result = rehydration.result
    assert "failure" in result["before_rehydration"]
    assert result["rehydration"]["roomKeys"] >= 1
    assert result["after_rehydration"] == {"type": "m.room.encrypted", "body": BODY}


def test_the_client_replaced_the_rehydrated_device(server: RunningServer, rehydration: Run) -> None:
    result = rehydration.result
    assert result["next_dehydrated_device_id"] != result["dehydrated_device_id"]
    # the old dehydrated device is gone with its keys; the new one is published
    bob = login(server.url, "bob")
    reply = authed(
        bob, "POST", server.url + CLIENT + "/keys/query", {"device_keys": {bob.user_id: []}}
    )
    published = reply.json()["device_keys"][bob.user_id]
    assert result["dehydrated_device_id"] not in published
    assert published[result["next_dehydrated_device_id"]]["dehydrated"] is True
    assert (
        authed(bob, "GET", server.url + DEHYDRATED).json()["device_id"]
        == (result["next_dehydrated_device_id"])
    )
