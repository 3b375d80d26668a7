"""Dehydrated devices (MSC3814) with matrix-js-sdk and its Rust crypto, a real client,
against Ranvier: the room key Alice sends while Bob has no logged-in device reaches only his
dehydrated device, and a new login of Bob rehydrates it and decrypts the message.

tests/interop/js/dehydration.mjs runs the clients in Node and prints what each step saw as
one JSON line; these tests assert on that and on what the server answers. Node and the
project in tests/interop/js (`npm ci`, which `make test` runs) are required.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    login,
    register,
)
from tests.interop.test_e2ee_js import JS_DIR, node

SCRIPT = JS_DIR / "dehydration.mjs"
SCRIPT_TIMEOUT = 150.0
BODY = "Drink me: a message for a device that is not there"
DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"


def run_script(server: RunningServer, alice: Session, bob: Session) -> dict[str, Any]:
    sessions = {
        name: {"user_id": s.user_id, "access_token": s.access_token, "device_id": s.device_id}
        for name, s in (("alice", alice), ("bob", bob))
    }
    stdin = {"baseUrl": server.url, **sessions, "bobPassword": DEFAULT_PASSWORD, "body": BODY}
    finished = subprocess.run(
        [node(), str(SCRIPT)],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        cwd=JS_DIR,
    )
    lines = finished.stdout.strip().splitlines()
    assert lines, f"no result (exit {finished.returncode}):\n{finished.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        pytest.fail(
            f"{result['error']} at {result['stage']!r}\n"
            f"{finished.stderr[-4000:]}\n{server.log()[-4000:]}"
        )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    with serving(tmp_path_factory.mktemp("hs"), module_database, **REGISTRATION_CONFIG) as running:
        yield running


@dataclass(frozen=True)
class Rehydration:
    result: dict[str, Any]
    alice: Session
    bob: Session


@pytest.fixture(scope="module")
def rehydration(server: RunningServer) -> Rehydration:
    alice = register(server.url, "alice", initial_device_display_name="js-sdk alice")
    bob = register(server.url, "bob", initial_device_display_name="js-sdk bob")
    return Rehydration(run_script(server, alice, bob), alice, bob)


def test_the_client_sees_dehydration_supported_and_stores_a_device(
    rehydration: Rehydration,
) -> None:
    result = rehydration.result
    assert result["dehydration_supported"] is True
    assert result["dehydrated_device_id"] != rehydration.bob.device_id


def test_alice_encrypts_for_the_dehydrated_device_alone(rehydration: Rehydration) -> None:
    result = rehydration.result
    assert result["bob_devices_seen_by_alice"] == [result["dehydrated_device_id"]]


def test_a_new_login_decrypts_only_after_rehydrating(rehydration: Rehydration) -> None:
    result = rehydration.result
    assert "failure" in result["before_rehydration"]
    assert result["rehydration"]["roomKeys"] >= 1
    assert result["after_rehydration"] == {"type": "m.room.encrypted", "body": BODY}


def test_the_client_replaced_the_rehydrated_device(
    server: RunningServer, rehydration: Rehydration
) -> None:
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
