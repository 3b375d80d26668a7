"""matrix-js-sdk with its Rust crypto, a real client, end to end encrypted against Ranvier.

tests/interop/js/e2ee.mjs runs two clients in Node: Alice sends in an encrypted room, Bob
decrypts; Bob sets up cross-signing and recovery (secret storage and a key backup); a new
login of Bob cannot read the history until, given the recovery key, it restores the room key
from the backup, then it can. The script prints what each step saw
as one JSON line; these tests assert on that, and on what the server stored.

Node and the project in tests/interop/js (`npm ci`, which `make test` runs) are required:
without them the tests fail rather than skip.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, authed
from tests.interop.node import Run, run_alice_and_bob

SCRIPT = "e2ee.mjs"
SCRIPT_TIMEOUT = 120.0
BODY = "The Cheshire Cat's grin, end to end encrypted"
DEFAULT_KEY = "m.secret_storage.default_key"
BACKUP_SECRET = "m.megolm_backup.v1"


@pytest.fixture(scope="module")
def exchange(server: RunningServer) -> Run:
    return run_alice_and_bob(server, SCRIPT, BODY, SCRIPT_TIMEOUT)


def test_bob_decrypts_what_alice_sent(
    exchange: Run,
) -> None:
    result = exchange.result
    assert result["bob_sees"] == {"type": "m.room.encrypted", "body": BODY}


def test_the_server_stores_only_ciphertext(server: RunningServer, exchange: Run) -> None:
    result, alice = exchange.result, exchange.alice
    room, event = quote(result["room_id"]), quote(result["event_id"])
    reply = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{room}/event/{event}")
    assert reply.status == 200, reply.body
    stored = reply.json()
    assert stored["type"] == "m.room.encrypted"
    assert stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert stored["content"]["device_id"] == alice.device_id
    assert BODY.encode() not in reply.body
    reply = authed(alice, "GET", f"{server.url}{CLIENT}/rooms/{room}/state/m.room.encryption")
    assert reply.json() == {"algorithm": "m.megolm.v1.aes-sha2"}


def test_bob_backs_the_room_key_up(server: RunningServer, exchange: Run) -> None:
    result, bob = exchange.result, exchange.bob
    assert result["bob_cross_signing_ready"] is True
    assert result["bob_secret_storage_ready"] is True
    assert result["backed_up"] == 1
    reply = authed(bob, "GET", f"{server.url}{CLIENT}/room_keys/version")
    assert reply.status == 200, reply.body
    backup = reply.json()
    assert backup["version"] == result["backup_version"]
    assert backup["algorithm"] == "m.megolm_backup.v1.curve25519-aes-sha2"
    assert backup["count"] == 1
    # Bob's device signed the backup, so his other devices can trust it
    assert bob.user_id in backup["auth_data"]["signatures"]
    # the backup's decryption key sits in Bob's account data, encrypted with the key his
    # recovery key stands for
    user = quote(bob.user_id)
    reply = authed(bob, "GET", f"{server.url}{CLIENT}/user/{user}/account_data/{DEFAULT_KEY}")
    assert reply.status == 200, reply.body
    key_id = reply.json()["key"]
    reply = authed(bob, "GET", f"{server.url}{CLIENT}/user/{user}/account_data/{BACKUP_SECRET}")
    assert reply.status == 200, reply.body
    assert list(reply.json()["encrypted"]) == [key_id]


def test_a_new_login_reads_history_only_after_restoring_the_backup(
    exchange: Run,
) -> None:
    result, bob = exchange.result, exchange.bob
    assert result["new_device_id"] != bob.device_id
    # without the room key the new device cannot read the message, and it knows the server
    # has a backup it has not got the key to
    assert result["new_login_before_restore"] == {
        "failure": "HISTORICAL_MESSAGE_BACKUP_UNCONFIGURED"
    }
    # Bob types his recovery key in: the new login opens secret storage with it
    assert result["new_login_got_the_backup_key"] is True
    assert result["restored"] == {"total": 1, "imported": 1}
    assert result["new_login_after_restore"] == {"type": "m.room.encrypted", "body": BODY}
