"""Device lists, keys and to-device messages between a Ranvier (PostgreSQL) and a real
Synapse: each side's users see the other side's devices, new ones included (Synapse's
m.device_list_update reaching us, ours reaching Synapse), their cross-signing keys, and
receive each other's to-device messages once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.harness import FederatingServer, FederationCA, federating, register
from tests.federation.replies import ClientServer, ok, sync_until
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session
from tests.integration.test_e2e_keys import CrossSigning, Device

_names = itertools.count()


@pytest.fixture(scope="module")
def ranvier(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    postgres_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    with federating(tmp_path_factory.mktemp("ranvier"), postgres_section, test_ca) as server:
        yield server


def login(server: FederatingServer | SynapsePeer, session: Session, device_id: str) -> Session:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": session.user_id},
        "password": DEFAULT_PASSWORD,
        "device_id": device_id,
    }
    answer = ok(server.request("POST", CLIENT + "/login", body))
    return Session(answer["user_id"], answer["access_token"], answer["device_id"])


def upload_keys(server: ClientServer, device: Device) -> None:
    body = {
        "device_keys": device.device_keys(),
        "one_time_keys": {"signed_curve25519:K0": device.one_time_key(0)},
    }
    ok(server.authed(device.session, "POST", CLIENT + "/keys/upload", body))


def devices_of(server: ClientServer, session: Session, user_id: str) -> set[str]:
    body = {"device_keys": {user_id: []}}
    answer = ok(server.authed(session, "POST", CLIENT + "/keys/query", body))
    assert answer["failures"] == {}, answer
    return set(answer["device_keys"].get(user_id, {}))


def poll(found: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def changed_in_sync(user_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda response: user_id in response.get("device_lists", {}).get("changed", [])


def test_device_lists_keys_and_to_device_with_synapse(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    n = next(_names)
    alice = Device(register(ranvier, f"alice{n}"))
    carol = Device(register_on_synapse(synapse, f"carol{n}"))
    upload_keys(ranvier, alice)
    upload_keys(synapse, carol)

    # a room on Synapse that alice joins
    body = {"invite": [alice.user_id], "preset": "private_chat"}
    room_id = ok(synapse.authed(carol.session, "POST", CLIENT + "/createRoom", body))["room_id"]
    sync_until(ranvier, alice.session, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    ok(ranvier.authed(alice.session, "POST", f"{CLIENT}/join/{quote(room_id)}", {}))
    members = f"{CLIENT}/rooms/{quote(room_id)}/joined_members"
    poll(
        lambda: alice.user_id in ok(synapse.authed(carol.session, "GET", members))["joined"],
        "alice's join at Synapse",
    )

    # each sees the other's device, and claims a one-time key of it
    assert devices_of(ranvier, alice.session, carol.user_id) == {carol.session.device_id}
    assert devices_of(synapse, carol.session, alice.user_id) == {alice.session.device_id}
    claim = {"one_time_keys": {carol.user_id: {carol.session.device_id: "signed_curve25519"}}}
    claimed = ok(ranvier.authed(alice.session, "POST", CLIENT + "/keys/claim", claim))
    assert claimed["one_time_keys"][carol.user_id][carol.session.device_id] == {
        "signed_curve25519:K0": carol.one_time_key(0)
    }

    # carol's new device reaches us through Synapse's m.device_list_update
    carol_phone = Device(login(synapse, carol.session, f"PHONE{n}"))
    upload_keys(synapse, carol_phone)
    sync_until(ranvier, alice.session, changed_in_sync(carol.user_id))
    poll(
        lambda: (
            devices_of(ranvier, alice.session, carol.user_id)
            == {carol.session.device_id, f"PHONE{n}"}
        ),
        "carol's new device at Ranvier",
    )
    # and alice's new device reaches Synapse through ours
    alice_phone = Device(login(ranvier, alice.session, f"PHONE{n}"))
    upload_keys(ranvier, alice_phone)
    poll(
        lambda: (
            devices_of(synapse, carol.session, alice.user_id)
            == {alice.session.device_id, f"PHONE{n}"}
        ),
        "alice's new device at Synapse",
    )

    # cross-signing keys both ways
    carol_keys = CrossSigning.for_user(carol.user_id)
    upload = CLIENT + "/keys/device_signing/upload"
    ok(synapse.authed(carol.session, "POST", upload, carol_keys.upload_body()))
    alice_keys = CrossSigning.for_user(alice.user_id)
    ok(ranvier.authed(alice.session, "POST", upload, alice_keys.upload_body()))

    def master_key(server: ClientServer, session: Session, user_id: str) -> Any:
        body = {"device_keys": {user_id: []}}
        answer = ok(server.authed(session, "POST", CLIENT + "/keys/query", body))
        return answer["master_keys"].get(user_id)

    poll(
        lambda: (
            master_key(ranvier, alice.session, carol.user_id) == carol_keys.master.unsigned_json()
        ),
        "carol's master key at Ranvier",
    )
    poll(
        lambda: (
            master_key(synapse, carol.session, alice.user_id) == alice_keys.master.unsigned_json()
        ),
        "alice's master key at Synapse",
    )

    # to-device messages both ways, each delivered once
    def send_to_device(server: ClientServer, sender: Session, recipient: Session, txn: str) -> None:
        path = f"{CLIENT}/sendToDevice/m.test.hello/{txn}"
        content = {"from": sender.user_id}
        body = {"messages": {recipient.user_id: {recipient.device_id: content}}}
        ok(server.authed(sender, "PUT", path, body))

    def to_device_from(sender: str) -> Callable[[dict[str, Any]], bool]:
        return lambda r: any(
            e.get("sender") == sender for e in r.get("to_device", {}).get("events", [])
        )

    send_to_device(ranvier, alice.session, carol.session, f"a{n}")
    got = sync_until(synapse, carol.session, to_device_from(alice.user_id))
    events = [e for e in got["to_device"]["events"] if e["sender"] == alice.user_id]
    assert events == [
        {"sender": alice.user_id, "type": "m.test.hello", "content": {"from": alice.user_id}}
    ]
    send_to_device(synapse, carol.session, alice.session, f"c{n}")
    got = sync_until(ranvier, alice.session, to_device_from(carol.user_id))
    events = [e for e in got["to_device"]["events"] if e["sender"] == carol.user_id]
    assert events == [
        {"sender": carol.user_id, "type": "m.test.hello", "content": {"from": carol.user_id}}
    ]
    after = ok(
        ranvier.authed(
            alice.session, "GET", f"{CLIENT}/sync?since={quote(got['next_batch'])}&timeout=1000"
        )
    )
    assert after.get("to_device", {}).get("events", []) == []
