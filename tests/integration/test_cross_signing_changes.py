"""Who is told of a cross-signing change, over real HTTP on both engines: a user-signing key
and a signature of another user's master key are the uploader's alone (only they can see
them), so only the uploader finds them in device_lists.changed, as Synapse tells it (SyTest:
"Changing user-signing key notifies local users")."""

from __future__ import annotations

from ranvier.protocol.signing import sign_json
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG
from tests.integration.test_e2e_keys import (
    CrossSigning,
    CrossSigningKey,
    device_lists,
    device_signing_upload,
    new_user,
    password_auth,
    shared_room,
    signatures_upload,
    sync,
)

server = module_server(caches={"sync_response_cache_duration": 0}, **REGISTRATION_CONFIG)


def changed(body: dict[str, object]) -> list[str]:
    return device_lists(body)[0]


def test_a_new_user_signing_key_is_told_to_its_owner_only(server: RunningServer) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    keys = CrossSigning.for_user(alice.user_id)
    shared_room(server, alice, bob)
    first = {
        "master_key": keys.master.unsigned_json(),
        "self_signing_key": keys.self_signing.signed_by(keys.master),
    }
    assert device_signing_upload(server, alice, first).status == 200
    alice_since = sync(server, alice)["next_batch"]
    bob_since = sync(server, bob)["next_batch"]

    body = {"user_signing_key": keys.user_signing.signed_by(keys.master)}
    challenge = device_signing_upload(server, alice, body)
    assert challenge.status == 401, challenge.body
    auth = password_auth(alice, challenge.json()["session"])
    assert device_signing_upload(server, alice, {**body, "auth": auth}).status == 200

    assert alice.user_id in changed(sync(server, alice, alice_since))
    assert alice.user_id not in changed(sync(server, bob, bob_since))

    # a new self-signing key is everyone's business again
    bob_since = sync(server, bob)["next_batch"]
    lone = CrossSigningKey(alice.user_id, "self_signing")
    body = {"self_signing_key": lone.signed_by(keys.master)}
    challenge = device_signing_upload(server, alice, body)
    auth = password_auth(alice, challenge.json()["session"])
    assert device_signing_upload(server, alice, {**body, "auth": auth}).status == 200
    assert alice.user_id in changed(sync(server, bob, bob_since))


def test_signing_another_users_master_key_is_told_to_the_signer(server: RunningServer) -> None:
    alice, bob, carol = (new_user(server, n) for n in ("alice", "bob", "carol"))
    alice_keys = CrossSigning.for_user(alice.user_id)
    bob_keys = CrossSigning.for_user(bob.user_id)
    shared_room(server, alice, bob, carol)
    assert device_signing_upload(server, alice, alice_keys.upload_body()).status == 200
    assert device_signing_upload(server, bob, bob_keys.upload_body()).status == 200
    since = {who.user_id: sync(server, who)["next_batch"] for who in (alice, bob, carol)}

    signed_bob = sign_json(
        bob_keys.master.unsigned_json(), alice.user_id, alice_keys.user_signing.signing
    )
    answer = signatures_upload(
        server, alice, {bob.user_id: {bob_keys.master.public_key: signed_bob}}
    )
    assert answer == {"failures": {}}

    # alice refetches bob's keys, which now carry her signature; nobody else is told
    assert changed(sync(server, alice, since[alice.user_id])) == [bob.user_id]
    assert "device_lists" not in sync(server, bob, since[bob.user_id])
    assert "device_lists" not in sync(server, carol, since[carol.user_id])
